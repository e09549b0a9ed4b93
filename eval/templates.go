package eval

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/mopeclip/mopeclip/clip"
)

// OpenAIImageNetTemplates are the 80 prompt templates of OpenAI's ImageNet
// zero-shot evaluation (CLIP's prompt-engineering notebook; open_clip's
// OPENAI_IMAGENET_TEMPLATES), in their order; "{}" is the class name.
var OpenAIImageNetTemplates = []string{
	"a bad photo of a {}.",
	"a photo of many {}.",
	"a sculpture of a {}.",
	"a photo of the hard to see {}.",
	"a low resolution photo of the {}.",
	"a rendering of a {}.",
	"graffiti of a {}.",
	"a bad photo of the {}.",
	"a cropped photo of the {}.",
	"a tattoo of a {}.",
	"the embroidered {}.",
	"a photo of a hard to see {}.",
	"a bright photo of a {}.",
	"a photo of a clean {}.",
	"a photo of a dirty {}.",
	"a dark photo of the {}.",
	"a drawing of a {}.",
	"a photo of my {}.",
	"the plastic {}.",
	"a photo of the cool {}.",
	"a close-up photo of a {}.",
	"a black and white photo of the {}.",
	"a painting of the {}.",
	"a painting of a {}.",
	"a pixelated photo of the {}.",
	"a sculpture of the {}.",
	"a bright photo of the {}.",
	"a cropped photo of a {}.",
	"a plastic {}.",
	"a photo of the dirty {}.",
	"a jpeg corrupted photo of a {}.",
	"a blurry photo of the {}.",
	"a photo of the {}.",
	"a good photo of the {}.",
	"a rendering of the {}.",
	"a {} in a video game.",
	"a photo of one {}.",
	"a doodle of a {}.",
	"a close-up photo of the {}.",
	"a photo of a {}.",
	"the origami {}.",
	"the {} in a video game.",
	"a sketch of a {}.",
	"a doodle of the {}.",
	"a origami {}.",
	"a low resolution photo of a {}.",
	"the toy {}.",
	"a rendition of the {}.",
	"a photo of the clean {}.",
	"a photo of a large {}.",
	"a rendition of a {}.",
	"a photo of a nice {}.",
	"a photo of a weird {}.",
	"a blurry photo of a {}.",
	"a cartoon {}.",
	"art of a {}.",
	"a sketch of the {}.",
	"a embroidered {}.",
	"a pixelated photo of a {}.",
	"itap of the {}.",
	"a jpeg corrupted photo of the {}.",
	"a good photo of a {}.",
	"a plushie {}.",
	"a photo of the nice {}.",
	"a photo of the small {}.",
	"a photo of the weird {}.",
	"the cartoon {}.",
	"art of the {}.",
	"a drawing of the {}.",
	"a photo of the large {}.",
	"a black and white photo of a {}.",
	"the plushie {}.",
	"a dark photo of a {}.",
	"itap of a {}.",
	"graffiti of the {}.",
	"a toy {}.",
	"itap of my {}.",
	"a photo of a cool {}.",
	"a photo of a small {}.",
	"a tattoo of the {}.",
}

// TemplateSets are the template lists known by name (--templates NAME).
var TemplateSets = map[string][]string{
	"openai-imagenet":   OpenAIImageNetTemplates,
	"openai-imagenet-7": clip.DefaultTemplates,
	"photo":             {"a photo of a {}."},
}

// Templates resolves --templates: a built-in set by name (TemplateSets),
// or a file with one template per line ({} or {c} for the class; blank
// lines and lines starting with # are skipped).
func Templates(nameOrFile string) ([]string, error) {
	if t, ok := TemplateSets[nameOrFile]; ok {
		return t, nil
	}
	lines, err := readLines(nameOrFile)
	if err != nil {
		return nil, fmt.Errorf("eval: templates %q: neither a built-in set (openai-imagenet, openai-imagenet-7, photo) nor a readable file: %w", nameOrFile, err)
	}
	var out []string
	for i, l := range lines {
		if strings.HasPrefix(l.text, "#") {
			continue
		}
		if !strings.Contains(l.text, "{}") && !strings.Contains(l.text, "{c}") {
			return nil, fmt.Errorf("eval: %s:%d: template %q has no {} or {c} for the class name", nameOrFile, lines[i].line, l.text)
		}
		out = append(out, l.text)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("eval: %s: no templates", nameOrFile)
	}
	return out, nil
}

// ClassNames reads a class-names file: one name per non-blank line, in the
// sorted order of the class folders; want is the number of classes.
func ClassNames(path string, want int) ([]string, error) {
	lines, err := readLines(path)
	if err != nil {
		return nil, fmt.Errorf("eval: class names: %w", err)
	}
	names := make([]string, len(lines))
	for i, l := range lines {
		names[i] = l.text
	}
	if len(names) != want {
		return nil, fmt.Errorf("eval: %s: %d class names for %d class folders", path, len(names), want)
	}
	return names, nil
}

// ClassNamesFromFolders turns folder names into class texts: "_" as space.
func ClassNamesFromFolders(folders []string) []string {
	names := make([]string, len(folders))
	for i, n := range folders {
		names[i] = strings.TrimSpace(strings.ReplaceAll(n, "_", " "))
	}
	return names
}

type numbered struct {
	line int
	text string
}

// readLines returns the trimmed non-blank lines of a file with their numbers.
func readLines(path string) ([]numbered, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []numbered
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if s := strings.TrimSpace(strings.TrimPrefix(sc.Text(), "\ufeff")); s != "" {
			out = append(out, numbered{n, s})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}
