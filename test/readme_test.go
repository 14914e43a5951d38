package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/openkruise/imageprepull/pkg/apis/custom/v1alpha1"
)

func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// paramsTable is README's params table, made from the code's param list.
func paramsTable() string {
	var b strings.Builder
	b.WriteString("| param | type | meaning |\n|---|---|---|\n")
	for _, p := range v1alpha1.Params {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", p.Name, p.Type, strings.ReplaceAll(p.Description, "|", `\|`))
	}
	return b.String()
}

func TestReadmeParamsTable(t *testing.T) {
	if !strings.Contains(readme(t), paramsTable()) {
		t.Errorf("README's params table differs from the code's; it should read:\n%s", paramsTable())
	}
}

// Every example README shows is the file in examples/, to the byte.
func TestReadmeExamplesAreTheFiles(t *testing.T) {
	re := regexp.MustCompile("(?s)<!-- example: (\\S+) -->\n```yaml\n(.*?)\n```")
	matches := re.FindAllStringSubmatch(readme(t), -1)
	if len(matches) < 4 {
		t.Fatalf("README embeds %d examples", len(matches))
	}
	for _, m := range matches {
		file, err := os.ReadFile(filepath.Join("..", m[1]))
		if err != nil {
			t.Errorf("README shows %s: %v", m[1], err)
			continue
		}
		if strings.TrimRight(string(file), "\n") != m[2] {
			t.Errorf("README's copy of %s differs from the file", m[1])
		}
	}
}
