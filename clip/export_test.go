package clip

// Test helpers of package clip, exported to the external test package
// clip_test (whose tests use internal/testutil, which imports clip).
var (
	TinyModel    = tinyModel
	TestInputs   = testInputs
	DeleteTensor = deleteTensor
)
