package merge

import (
	"strings"
	"testing"
)

func TestFindInSums(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	other := strings.Repeat("cd", 32)
	md5 := strings.Repeat("ef", 16)
	tests := []struct {
		name, list, file string
		want             string // "" for an error
	}{
		{"gnu", sha + "  debian.iso\n" + other + "  other.iso\n", "debian.iso", "sha256:" + sha},
		{"gnu-binary", sha + " *debian.iso\n", "debian.iso", "sha256:" + sha},
		{"path-in-list", sha + "  ./images/debian.iso\n", "debian.iso", "sha256:" + sha},
		{"path-in-name", sha + "  debian.iso\n", "/dl/debian.iso", "sha256:" + sha},
		{"bsd", "SHA256 (debian.iso) = " + sha + "\n", "debian.iso", "sha256:" + sha},
		{"md5sum", md5 + "  debian.iso\n", "debian.iso", "md5:" + md5},
		{"strongest-wins", md5 + "  debian.iso\n" + "SHA256 (debian.iso) = " + sha + "\n", "debian.iso", "sha256:" + sha},
		{"comments-and-junk", "# list\nnot a line\n\n" + sha + "  debian.iso\n", "debian.iso", "sha256:" + sha},
		{"missing", sha + "  other.iso\n", "debian.iso", ""},
		{"conflict", sha + "  debian.iso\n" + other + "  debian.iso\n", "debian.iso", ""},
		{"empty", "", "debian.iso", ""},
		// The output's name first, then the server's (after a rename).
		{"second-name", sha + "  debian.iso\n", "mine.iso|debian.iso", "sha256:" + sha},
		{"first-name-first", other + "  debian.iso\n" + sha + "  mine.iso\n", "mine.iso|debian.iso", "sha256:" + sha},
		{"neither", sha + "  other.iso\n", "mine.iso|debian.iso", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FindInSums(strings.NewReader(tt.list), strings.Split(tt.file, "|")...)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("found %v, want an error", c)
				}
				return
			}
			if err != nil || c.String() != tt.want {
				t.Fatalf("FindInSums = %v, %v; want %s", c, err, tt.want)
			}
		})
	}
}

func FuzzFindInSums(f *testing.F) {
	f.Add(strings.Repeat("ab", 32)+"  f.iso\n", "f.iso")
	f.Add("SHA512 (f.iso) = "+strings.Repeat("00", 64)+"\n", "f.iso")
	f.Add(" ( ) = \n*\n", "")
	f.Fuzz(func(t *testing.T, list, name string) {
		c, err := FindInSums(strings.NewReader(list), name)
		if err != nil {
			return
		}
		h, err := NewHash(c.Algo)
		if err != nil || len(c.Sum) != h.Size() {
			t.Fatalf("FindInSums(%q, %q) = %v", list, name, c)
		}
	})
}
