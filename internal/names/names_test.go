package names

import (
	"strings"
	"testing"
)

func TestCheckRelative(t *testing.T) {
	for _, ok := range []string{"a.iso", "sub/a.iso", "deep/er/a.iso", "..a", "a..", "名前.bin", "with space.bin",
		"console.txt", "nulls", "com0", "com10", "lpt", "auxiliary/x"} {
		if err := CheckRelative(ok); err != nil {
			t.Errorf("CheckRelative(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "/etc/passwd", "../escape.bin", "a/../../b", "sub/..", "a//b", "./a", "a/", "a\\b",
		"a\x00b", "a\nb", "\xff", strings.Repeat("x", 256), "..",
		"NUL", "nul.txt", "sub/con", "COM1", "lpt9.iso", "aux.tar.gz", "prn "} {
		if err := CheckRelative(bad); err == nil {
			t.Errorf("CheckRelative(%q) = nil, want an error", bad)
		}
	}
}

func TestCheckRelativeSaysWhy(t *testing.T) {
	for name, want := range map[string]string{
		"/etc/passwd": "absolute",
		"a/../../b":   "out of the folder",
		"sub/NUL.iso": "device",
	} {
		if err := CheckRelative(name); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckRelative(%q) = %v, want an error saying %q", name, err, want)
		}
	}
}
