package imageprepull

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Every Reason* and Result* constant of this package and of pkg/kruise is
// documented, so that README's tables (made from the docs) cannot miss one.
func TestEveryReasonAndResultIsDocumented(t *testing.T) {
	documented := map[string]bool{}
	for _, d := range ReasonDocs {
		documented[d.Name] = true
	}
	for _, d := range ResultDocs {
		documented[d.Name] = true
	}
	for _, dir := range []string{".", filepath.Join("..", "..", "kruise")} {
		pkgs, err := parser.ParseDir(token.NewFileSet(), dir, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, pkg := range pkgs {
			for name, f := range pkg.Files {
				if strings.HasSuffix(name, "_test.go") {
					continue
				}
				ast.Inspect(f, func(n ast.Node) bool {
					vs, ok := n.(*ast.ValueSpec)
					if !ok || len(vs.Values) != 1 {
						return true
					}
					for _, id := range vs.Names {
						if !strings.HasPrefix(id.Name, "Reason") && !strings.HasPrefix(id.Name, "Result") {
							continue
						}
						lit, ok := vs.Values[0].(*ast.BasicLit)
						if !ok {
							continue
						}
						v, _ := strconv.Unquote(lit.Value)
						if !documented[v] {
							t.Errorf("%s (%q, in %s) is not in ReasonDocs or ResultDocs", id.Name, v, name)
						}
					}
					return true
				})
			}
		}
	}
}

func TestResultsAreTheDocumentedOnes(t *testing.T) {
	var got []string
	for _, r := range summarize(nil).results() {
		got = append(got, r.Name)
	}
	var want []string
	for _, d := range ResultDocs {
		want = append(want, d.Name)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("results %v, documented %v", got, want)
	}
}
