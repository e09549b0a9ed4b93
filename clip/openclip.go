package clip

import "fmt"

// File names of open_clip's hub layout.
const (
	OpenCLIPConfigFile  = "open_clip_config.json"
	OpenCLIPWeightsFile = "open_clip_model.safetensors"
)

func loadOpenCLIP(dir string) (*Model, error) {
	return nil, fmt.Errorf("%s: open_clip checkpoints are not supported yet", dir)
}
