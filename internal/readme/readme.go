// Package readme renders README.md's generated parts from the code and the
// files they show, so that they cannot drift: the examples between
// "<!-- example: PATH -->" markers, and the params table between
// "<!-- params -->" and "<!-- /params -->".
package readme

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/openkruise/imageprepull/pkg/apis/custom/v1alpha1"
)

var (
	exampleRE = regexp.MustCompile("(?s)(<!-- example: (\\S+) -->\n```yaml\n)(.*?)(\n```)")
	paramsRE  = regexp.MustCompile("(?s)(<!-- params -->\n).*?(<!-- /params -->)")
)

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
	if !paramsRE.MatchString(out) {
		return "", fmt.Errorf("README has no <!-- params --> section")
	}
	out = paramsRE.ReplaceAllString(out, "${1}"+strings.ReplaceAll(ParamsTable(), "$", "$$")+"${2}")
	return out, err
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
