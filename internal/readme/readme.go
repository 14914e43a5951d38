// Package readme renders README.md's generated parts from the code and the
// files they show, so that they cannot drift: the examples after
// "<!-- example: PATH -->" markers, and the tables of params, results,
// reasons and events between "<!-- NAME -->" and "<!-- /NAME -->".
package readme

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/openkruise/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/openkruise/imageprepull/pkg/reconciler/imageprepull"
)

var exampleRE = regexp.MustCompile("(?s)(<!-- example: (\\S+) -->\n```yaml\n)(.*?)(\n```)")

// tables are README's generated tables, by marker name.
var tables = map[string]func() string{
	"params":  ParamsTable,
	"results": ResultsTable,
	"reasons": func() string { return docTable("reason", v1alpha1.ReasonDocs) },
	"events":  func() string { return docTable("event", v1alpha1.EventDocs) },
	"metrics": MetricsTable,
}

// Render returns README with its generated parts made anew; root is the
// repository's root, where example paths start.
func Render(root, readme string) (string, error) {
	var err error
	out := exampleRE.ReplaceAllStringFunc(readme, func(block string) string {
		m := exampleRE.FindStringSubmatch(block)
		b, e := os.ReadFile(filepath.Join(root, m[2]))
		if e != nil {
			err = fmt.Errorf("README shows %s: %w", m[2], e)
			return block
		}
		return m[1] + strings.TrimRight(string(b), "\n") + m[4]
	})
	for name, table := range tables {
		re := regexp.MustCompile("(?s)(<!-- " + name + " -->\n).*?(<!-- /" + name + " -->)")
		if !re.MatchString(out) {
			return "", fmt.Errorf("README has no <!-- %s --> section", name)
		}
		out = re.ReplaceAllString(out, "${1}"+strings.ReplaceAll(table(), "$", "$$")+"${2}")
	}
	return out, err
}

func docTable(what string, docs []v1alpha1.Doc) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| %s | meaning |\n|---|---|\n", what)
	for _, d := range docs {
		fmt.Fprintf(&b, "| `%s` | %s |\n", d.Name, strings.ReplaceAll(d.Meaning, "|", `\|`))
	}
	return b.String()
}

// ResultsTable is the results table, with the type a later task receives.
func ResultsTable() string {
	var b strings.Builder
	b.WriteString("| result | type a later task receives | holds | meaning |\n|---|---|---|---|\n")
	for _, d := range v1alpha1.ResultDocs {
		fmt.Fprintf(&b, "| `%s` | string | %s | %s |\n", d.Name, strings.ReplaceAll(d.Use, "|", `\|`), strings.ReplaceAll(d.Meaning, "|", `\|`))
	}
	return b.String()
}

// MetricsTable is the metrics table, as Prometheus scrapes them.
func MetricsTable() string {
	var b strings.Builder
	b.WriteString("| metric | type | labels | meaning |\n|---|---|---|---|\n")
	for _, m := range imageprepull.MetricDocs {
		labels := m.Labels
		if labels == "" {
			labels = "none"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", m.Name, m.Type, labels, strings.ReplaceAll(m.Meaning, "|", `\|`))
	}
	return b.String()
}

// ParamsTable is the params table, made from v1alpha1.Params.
func ParamsTable() string {
	var b strings.Builder
	b.WriteString("| param | type | meaning |\n|---|---|---|\n")
	for _, p := range v1alpha1.Params {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", p.Name, p.Type, strings.ReplaceAll(p.Description, "|", `\|`))
	}
	return b.String()
}
