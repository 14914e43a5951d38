// Package readme renders the generated parts of README.md and docs/*.md
// from the code and the files they show, so that they cannot drift: the
// examples after "<!-- example: PATH -->" markers, and the tables of params,
// results, reasons, events and metrics between "<!-- NAME -->" and
// "<!-- /NAME -->". Each table is in one of the files at least.
package readme

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/reconciler/imageprepull"
)

// The shown file is everything up to the first fence: an empty block
// (a new marker) must not reach into the next one.
var exampleRE = regexp.MustCompile("(?s)(<!-- example: (\\S+) -->\n```yaml\n)(.*?)(```)")

// tables are the generated tables, by marker name.
var tables = map[string]func() string{
	"params":  ParamsTable,
	"results": ResultsTable,
	"reasons": func() string { return docTable("reason", v1alpha1.ReasonDocs) },
	"events":  func() string { return docTable("event", v1alpha1.EventDocs) },
	"metrics": MetricsTable,
}

// Files are the documents with generated parts, relative to the
// repository's root: README.md and docs/*.md.
func Files(root string) ([]string, error) {
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		return nil, err
	}
	out := []string{"README.md"}
	for _, d := range docs {
		rel, err := filepath.Rel(root, d)
		if err != nil {
			return nil, err
		}
		out = append(out, rel)
	}
	sort.Strings(out[1:])
	return out, nil
}

// RenderAll renders every one of Files, by path, and fails when a table is
// in none of them.
func RenderAll(root string) (map[string]string, error) {
	files, err := Files(root)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	shown := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return nil, err
		}
		rendered, names, err := Render(root, string(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out[f] = rendered
		for _, n := range names {
			shown[n] = true
		}
	}
	for name := range tables {
		if !shown[name] {
			return nil, fmt.Errorf("no document has the <!-- %s --> table (README.md, docs/*.md)", name)
		}
	}
	return out, nil
}

// Render returns a document with its generated parts made anew, and the
// names of the tables it has; root is the repository's root, where example
// paths start.
func Render(root, doc string) (string, []string, error) {
	var err error
	out := exampleRE.ReplaceAllStringFunc(doc, func(block string) string {
		m := exampleRE.FindStringSubmatch(block)
		b, e := os.ReadFile(filepath.Join(root, m[2]))
		if e != nil {
			err = fmt.Errorf("it shows %s: %w", m[2], e)
			return block
		}
		return m[1] + strings.TrimRight(string(b), "\n") + "\n" + m[4]
	})
	var names []string
	for name, table := range tables {
		re := regexp.MustCompile("(?s)(<!-- " + name + " -->\n).*?(<!-- /" + name + " -->)")
		if !re.MatchString(out) {
			continue
		}
		names = append(names, name)
		out = re.ReplaceAllString(out, "${1}"+strings.ReplaceAll(table(), "$", "$$")+"${2}")
	}
	return out, names, err
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
