package cuda

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// kernelSigs is the parameter list of every kernel in kernels/*.cu, one
// letter per parameter: p a device pointer, q a 64-bit integer (both .u64 in
// PTX), i a 32-bit int, f a float32, d a float64. The launcher checks every launch against
// it, and TestPTXSignatures checks it against the committed PTX, so a Go call
// and a kernel prototype cannot drift apart silently.
var kernelSigs = map[string]string{
	"attn_flash_fwd_d16":      "ppppiiiiiiifipp",
	"attn_flash_fwd_d32":      "ppppiiiiiiifipp",
	"attn_flash_fwd_d64":      "ppppiiiiiiifipp",
	"attn_flash_fwd_d128":     "ppppiiiiiiifipp",
	"attn_flash_fwd_d128_kv1": "ppppiiiiiiifipp",
	"attn_flash_fwd_v4_d64":   "ppppiiiiiiifipp",
	"attn_probs":              "pppiiiifippi",
	"attn_pv":                 "pppiiiiipi",
	"attn_bwd_dv":             "pppiiiiippif",
	"attn_bwd_ds":             "ppppiiiiippi",
	"attn_bwd_dq":             "pppiiiiifppif",
	"attn_bwd_dk":             "pppiiiiifppif",

	"attn_flash_fwd_save_d16":  "ppppiiiiiiifipppppi",
	"attn_flash_fwd_save_d32":  "ppppiiiiiiifipppppi",
	"attn_flash_fwd_save_d64":  "ppppiiiiiiifipppppi",
	"attn_flash_fwd_save_d128": "ppppiiiiiiifipppppi",
	"attn_flash_bwd_dq_d16":    flashBwdSig,
	"attn_flash_bwd_dq_d32":    flashBwdSig,
	"attn_flash_bwd_dq_d64":    flashBwdSig,
	"attn_flash_bwd_dq_d128":   flashBwdSig,
	"attn_flash_bwd_dkdv_d16":  flashBwdSig,
	"attn_flash_bwd_dkdv_d32":  flashBwdSig,
	"attn_flash_bwd_dkdv_d64":  flashBwdSig,
	"attn_flash_bwd_dkdv_d128": flashBwdSig,

	"bias_act_bwd": "pppiiiiip",
	"sum_finish":   "pidp",
	"nce_row_lse":  "pip",
	"nce_col_lse":  "pip",
	"nce_rows":     "pippipp",
	"soft_ce_rows": "pppiifp",
	"mse_partials": "ppqp",
	"mse_bwd":      "pppppqii",
	"mt_sumsq":     "ppp",
	"norm_finish":  "pip",
	"mt_adamw":     "ppfffffffpd",

	"ln_fwd":            "pipippipippppiif",
	"ln_bwd_dx":         "ppppppiii",
	"col_partials":      "piiip",
	"ln_param_partials": "ppppiiipp",
	"col_finish":        "ppii",
	"softmax_rows":      "pii",
	"softmax_bwd":       "pppiii",

	"ew_add":     "pppq",
	"ew_mul":     "pppq",
	"ew_muladd":  "pppq",
	"ew_axpy":    "fppq",
	"ew_scale":   "fpq",
	"bias_act":   "ppqii",
	"act_fwd":    "ppqi",
	"act_bwd":    "pppqii",
	"reduce_dot": "ppqp",

	"patch_unfold": "ppiiiii",
	"vit_embed":    "ppppiii",

	"text_embed":  "ppppiii",
	"gather_rows": "pipipii",

	"sgemm_ep": "iiiiifpiqpiqfpiqpi",
}

// flashBwdSig is the parameter list of the flash backward kernels: q, k, v,
// dO, lse, osave, delta, dq, dk, dv; T, H, D, ldq, ldk, ldv, lddo; scale;
// causal; keyLens, headSlot; Hk; betaQ, betaK, betaV.
const flashBwdSig = "pppppppppp" + "iiiiiii" + "f" + "i" + "pp" + "i" + "fff"

// ptxKind maps a signature letter to the PTX parameter type nvcc emits.
func ptxKind(c byte) string {
	switch c {
	case 'p', 'q':
		return "u64"
	case 'i':
		return "u32"
	case 'f':
		return "f32"
	case 'd':
		return "f64"
	}
	return "?"
}

var (
	ptxEntryRE = regexp.MustCompile(`\.entry\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(([^)]*)\)`)
	ptxParamRE = regexp.MustCompile(`\.param\s+\.([a-z0-9]+)\s+[A-Za-z0-9_]+`)
)

// ptxEntries returns the kernels of a PTX module with their parameter types
// ("u64,u32,f32,...").
func ptxEntries(ptx string) map[string]string {
	out := map[string]string{}
	for _, m := range ptxEntryRE.FindAllStringSubmatch(ptx, -1) {
		var kinds []string
		for _, p := range ptxParamRE.FindAllStringSubmatch(m[2], -1) {
			kinds = append(kinds, p[1])
		}
		out[m[1]] = strings.Join(kinds, ",")
	}
	return out
}

// checkPTXSignatures compares the entries of the PTX modules (name → text)
// with kernelSigs and returns the mismatches.
func checkPTXSignatures(modules map[string]string) []string {
	var problems []string
	seen := map[string]bool{}
	for mod, text := range modules {
		for name, kinds := range ptxEntries(text) {
			seen[name] = true
			sig, ok := kernelSigs[name]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: kernel %s is not in kernelSigs", mod, name))
				continue
			}
			want := make([]string, len(sig))
			for i := range sig {
				want[i] = ptxKind(sig[i])
			}
			if w := strings.Join(want, ","); w != kinds {
				problems = append(problems, fmt.Sprintf("%s: kernel %s has parameters (%s), kernelSigs says %q = (%s)", mod, name, kinds, sig, w))
			}
		}
	}
	for name := range kernelSigs {
		if !seen[name] {
			problems = append(problems, fmt.Sprintf("kernel %s of kernelSigs is in no PTX module", name))
		}
	}
	sort.Strings(problems)
	return problems
}
