package clip

import "fmt"

// Layout is the file layout a model directory was read from.
type Layout int

const (
	// LayoutHF is Hugging Face's: config.json with model.safetensors or
	// sharded weights.
	LayoutHF Layout = iota
	// LayoutOpenCLIP is open_clip's hub layout: open_clip_config.json with
	// open_clip_model.safetensors.
	LayoutOpenCLIP
)

// String returns the layout's name.
func (l Layout) String() string {
	switch l {
	case LayoutHF:
		return "hf"
	case LayoutOpenCLIP:
		return "open_clip"
	}
	return fmt.Sprintf("Layout(%d)", int(l))
}

// ParseLayout parses "hf" or "open_clip" (also "openclip").
func ParseLayout(s string) (Layout, error) {
	switch s {
	case "hf", "huggingface":
		return LayoutHF, nil
	case "open_clip", "openclip":
		return LayoutOpenCLIP, nil
	}
	return 0, fmt.Errorf("unknown layout %q (want hf or open_clip)", s)
}
