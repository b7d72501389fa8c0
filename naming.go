package convoy

import (
	"mime"
	"net/url"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/convoy-dl/convoy/internal/names"
)

// maxNameBytes bounds a file name taken from the server (most file systems
// allow 255 bytes; room is left for ".convoy").
const maxNameBytes = 240

// fallbackName is used when neither the server nor the URL offers a name.
const fallbackName = "download"

// RemoteName picks a local file name for a download: the filename of the
// Content-Disposition header, else the last segment of the URL path. The
// result is a single, printable path element: no folder, no "..", no control
// characters, at most 240 bytes.
func RemoteName(contentDisposition, rawURL string) string {
	if contentDisposition != "" {
		if _, params, err := mime.ParseMediaType(contentDisposition); err == nil {
			if n := sanitizeName(params["filename"]); n != "" {
				return n
			}
		}
	}
	if u, err := url.Parse(rawURL); err == nil {
		// The last element only: a URL of a folder ("/files/") has none.
		if n := sanitizeName(u.Path[strings.LastIndexByte(u.Path, '/')+1:]); n != "" {
			return n
		}
	}
	return fallbackName
}

// sanitizeName reduces name to a safe base name, or "" when nothing usable
// is left.
func sanitizeName(name string) string {
	name = strings.ReplaceAll(name, "\\", "/")
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r == utf8.RuneError, unicode.IsControl(r), !unicode.IsPrint(r) && r != ' ':
			b.WriteRune('_')
		default:
			b.WriteRune(r)
		}
	}
	// No hidden files, no "." or "..", no leading or trailing blanks.
	name = strings.TrimRight(strings.TrimLeft(b.String(), ". "), " ")
	if len(name) > maxNameBytes {
		ext := path.Ext(name)
		if len(ext) > 16 || !utf8.ValidString(ext) {
			ext = ""
		}
		name = cutUTF8(name[:len(name)-len(ext)], maxNameBytes-len(ext)) + ext
	}
	return name
}

// cutUTF8 shortens s to at most n bytes without splitting a character.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// CheckRelativeName says why name, given by a list or a document rather than
// typed as -o, cannot name a file inside the download's folder, or returns
// nil. It must be relative, without "." or ".." elements, empty elements, a
// trailing slash, control characters or device names (NUL, COM1, ...), and
// each element at most 255 bytes: subfolders are fine, a way out of the
// folder is not.
func CheckRelativeName(name string) error {
	return names.CheckRelative(name)
}
