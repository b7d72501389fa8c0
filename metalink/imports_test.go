package metalink

import (
	"go/build"
	"strings"
	"testing"
)

// TestImportsNoneOfTheParts: like manifest, this package stands apart from
// the network and disk sides; the root package wires it in.
func TestImportsNoneOfTheParts(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		for _, part := range []string{"/segment", "/merge", "/manifest"} {
			if strings.HasPrefix(imp, "github.com/convoy-dl/convoy") && strings.HasSuffix(imp, part) {
				t.Errorf("metalink imports %s", imp)
			}
		}
	}
}
