package grid

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/mopeclip/mopeclip/internal/atomicfile"
)

// ResultsFile is the demo's list of evaluated models.
const ResultsFile = "results.json"

// WriteResults writes results (results.json) to path.
func WriteResults(path string, results []*Result) error {
	js, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(js, '\n'))
}

// PrintResults prints results as an aligned text table.
func PrintResults(w io.Writer, results []*Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\tparams\tGFLOPs img\tGFLOPs txt\tTR@1\tTR@5\tTR@10\tIR@1\tIR@5\tIR@10\tmean R@1\tshape top1\tcolour top1\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%.2fM\t%.3f\t%.3f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", r.Name,
			float64(r.Params)/1e6, r.ImageGFLOPs, r.TextGFLOPs, r.TR1, r.TR5, r.TR10, r.IR1, r.IR5, r.IR10, r.R1, r.ShapeTop1, r.ColorTop1)
	}
	return tw.Flush()
}
