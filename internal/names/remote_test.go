package names

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// checkRemote fails t unless name is a safe local file name: one
// printable path element, not hidden, not "." or "..", at most
// maxBytes of valid UTF-8.
func checkRemote(t *testing.T, cd, rawURL, name string) {
	t.Helper()
	fail := func(why string) {
		t.Helper()
		t.Fatalf("Remote(%q, %q) = %q: %s", cd, rawURL, name, why)
	}
	switch {
	case name == "":
		fail("empty")
	case name == "." || name == "..":
		fail("a relative folder")
	case strings.ContainsAny(name, `/\`):
		fail("contains a path separator")
	case filepath.Base(name) != name:
		fail("not a single path element")
	case filepath.IsAbs(name):
		fail("absolute")
	case strings.HasPrefix(name, "."):
		fail("hidden (leading dot)")
	case len(name) > maxBytes:
		fail("longer than " + strconv.Itoa(maxBytes) + " bytes")
	case !utf8.ValidString(name):
		fail("not valid UTF-8")
	}
	for _, r := range name {
		if r == utf8.RuneError || unicode.IsControl(r) || !unicode.IsPrint(r) && r != ' ' {
			fail("contains the unprintable " + strconv.QuoteRune(r))
		}
	}
}

func TestRemote(t *testing.T) {
	long := strings.Repeat("a", 1000) + ".iso"
	longUTF8 := "x" + strings.Repeat("é", 500) // the 240-byte cut falls inside a rune
	tests := []struct {
		name string
		cd   string
		url  string
		want string
	}{
		// Content-Disposition.
		{"cd/quoted", `attachment; filename="report.pdf"`, "https://example.com/dl?id=1", "report.pdf"},
		{"cd/token", `attachment; filename=report.pdf`, "https://example.com/dl", "report.pdf"},
		{"cd/inline", `inline; filename="pic.png"`, "https://example.com/dl", "pic.png"},
		{"cd/trailing-semicolon", `attachment; filename="a.txt";`, "https://example.com/dl", "a.txt"},
		{"cd/raw-utf8", `attachment; filename="naïve.txt"`, "https://example.com/dl", "naïve.txt"},
		{"cd/rfc5987-utf8", `attachment; filename*=UTF-8''%E2%82%AC%20rates.txt`, "https://example.com/dl", "€ rates.txt"},
		{"cd/rfc5987-lowercase-charset", `attachment; filename*=utf-8''na%C3%AFve.txt`, "https://example.com/dl", "naïve.txt"},
		{"cd/rfc5987-beats-plain", `attachment; filename="fallback.txt"; filename*=UTF-8''na%C3%AFve.txt`, "https://example.com/dl", "naïve.txt"},
		{"cd/rfc5987-beats-plain-reversed", `attachment; filename*=UTF-8''na%C3%AFve.txt; filename="fallback.txt"`, "https://example.com/dl", "naïve.txt"},
		{"cd/dotdot-path", `attachment; filename="../../etc/passwd"`, "https://example.com/dl", "passwd"},
		{"cd/absolute-path", `attachment; filename="/etc/passwd"`, "https://example.com/dl", "passwd"},
		{"cd/backslashes", `attachment; filename="..\\..\\x"`, "https://example.com/dl", "x"},
		{"cd/rfc5987-encoded-slashes", `attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd`, "https://example.com/dl", "passwd"},
		{"cd/rfc5987-encoded-backslashes", `attachment; filename*=UTF-8''..%5C..%5Cwin.ini`, "https://example.com/dl", "win.ini"},
		{"cd/nul", `attachment; filename*=UTF-8''a%00b.txt`, "https://example.com/dl", "a_b.txt"},
		{"cd/raw-nul-in-quotes", "attachment; filename=\"a\x00b.txt\"", "https://example.com/dl", "a_b.txt"},
		{"cd/controls", `attachment; filename*=UTF-8''a%0Ab%09c%0Dd%1Be%7Ff%C2%85g.txt`, "https://example.com/dl", "a_b_c_d_e_f_g.txt"},
		{"cd/unicode-line-separator", `attachment; filename*=UTF-8''a%E2%80%A8b`, "https://example.com/dl", "a_b"},
		{"cd/invalid-utf8", `attachment; filename*=UTF-8''a%FFb`, "https://example.com/dl", "a_b"},
		{"cd/bidi-override", `attachment; filename*=UTF-8''evil%E2%80%AEtxt.exe`, "https://example.com/dl", "evil_txt.exe"},
		{"cd/hidden", `attachment; filename=".bashrc"`, "https://example.com/dl", "bashrc"},
		{"cd/spaces-around", `attachment; filename="  spaced.txt  "`, "https://example.com/dl", "spaced.txt"},
		{"cd/1000-bytes", `attachment; filename="` + long + `"`, "https://example.com/dl", strings.Repeat("a", maxBytes-len(".iso")) + ".iso"},
		{"cd/dotdot-alone", `attachment; filename=".."`, "https://example.com/files/real.iso", "real.iso"},
		{"cd/dot-alone", `attachment; filename="."`, "https://example.com/files/real.iso", "real.iso"},
		{"cd/dots-and-spaces", `attachment; filename=" ... "`, "https://example.com/files/real.iso", "real.iso"},
		{"cd/empty", `attachment; filename=""`, "https://example.com/files/real.iso", "real.iso"},
		{"cd/trailing-slash", `attachment; filename="dir/"`, "https://example.com/files/real.iso", "real.iso"},
		{"cd/no-filename", `attachment`, "https://example.com/files/real.iso", "real.iso"},
		{"cd/unparsable", `attachment; filename=My File.txt`, "https://example.com/files/real.iso", "real.iso"},
		{"cd/unknown-charset", `attachment; filename*=KOI8-R''%C1`, "https://example.com/files/real.iso", "real.iso"},

		// The URL path.
		{"url/plain", "", "https://example.com/files/ubuntu.iso", "ubuntu.iso"},
		{"url/percent-decoded", "", "https://example.com/dir/my%20file%E2%82%AC.iso", "my file€.iso"},
		{"url/query-and-fragment-ignored", "", "https://example.com/f.tar.gz?token=secret&x=1#part", "f.tar.gz"},
		{"url/encoded-slashes", "", "https://example.com/a%2F..%2F..%2Fetc%2Fpasswd", "passwd"},
		{"url/encoded-backslashes", "", "https://example.com/a%5C..%5Cwin.ini", "win.ini"},
		{"url/encoded-dotdot", "", "https://example.com/%2E%2E", fallback},
		{"url/encoded-nul", "", "https://example.com/a%00b", "a_b"},
		{"url/invalid-utf8", "", "https://example.com/%FF%FE.bin", "__.bin"},
		{"url/hidden", "", "https://example.com/.env", "env"},
		{"url/root", "", "https://example.com/", fallback},
		{"url/no-path", "", "https://example.com", fallback},
		{"url/unparsable", "", "http://[::1", fallback},
		{"url/empty", "", "", fallback},
		{"url/1000-bytes", "", "https://example.com/" + long, strings.Repeat("a", maxBytes-len(".iso")) + ".iso"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Remote(tt.cd, tt.url)
			checkRemote(t, tt.cd, tt.url, got)
			if got != tt.want {
				t.Fatalf("Remote(%q, %q) = %q, want %q", tt.cd, tt.url, got, tt.want)
			}
		})
	}

	t.Run("cd/1000-bytes-utf8", func(t *testing.T) {
		cd := `attachment; filename="` + longUTF8 + `"`
		got := Remote(cd, "")
		checkRemote(t, cd, "", got)
		if !strings.HasPrefix(longUTF8, got) || len(got) < maxBytes-utf8.UTFMax {
			t.Fatalf("RemoteName cut the long name to %d bytes %q, want a prefix of at most %d", len(got), got, maxBytes)
		}
	})
}

// TestRemoteFolderURL: a URL naming a folder ("/files/") has no file
// name of its own; the folder's name is not the file's.
func TestRemoteFolderURL(t *testing.T) {
	for _, u := range []string{"https://example.com/files/", "https://example.com/a/b//"} {
		got := Remote("", u)
		checkRemote(t, "", u, got)
		if got != fallback {
			t.Errorf("Remote(\"\", %q) = %q, want %q: path.Base drops the trailing slash and takes the folder's name", u, got, fallback)
		}
	}
}

func FuzzRemote(f *testing.F) {
	seeds := [][2]string{
		{`attachment; filename="report.pdf"`, "https://example.com/dl"},
		{`attachment; filename*=UTF-8''%E2%82%AC%20rates.txt`, ""},
		{`attachment; filename="../../etc/passwd"`, ""},
		{`attachment; filename="..\\..\\x"`, ""},
		{"attachment; filename=\"a\x00b\"", ""},
		{`attachment; filename=".."`, "https://example.com/.."},
		{`attachment; filename="."`, "https://example.com/%2E"},
		{"", "https://example.com/"},
		{"", "https://example.com/a%2F..%2Fb"},
		{"", "https://example.com/%FF"},
		{`attachment; filename="` + strings.Repeat("é", 300) + `"`, ""},
		{"", ""},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, cd, rawURL string) {
		checkRemote(t, cd, rawURL, Remote(cd, rawURL))
	})
}

func TestCheckRelativeNames(t *testing.T) {
	for _, ok := range []string{"a.iso", "sub/a.iso", "deep/er/a.iso", "..a", "a..", "名前.bin", "with space.bin"} {
		if err := CheckRelative(ok); err != nil {
			t.Errorf("CheckRelative(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "/etc/passwd", "../escape.bin", "a/../../b", "sub/..", "a//b", "./a", "a/", "a\\b", "a\x00b", "a\nb", "\xff", strings.Repeat("x", 256)} {
		if err := CheckRelative(bad); err == nil {
			t.Errorf("CheckRelative(%q) = nil, want an error", bad)
		}
	}
}
