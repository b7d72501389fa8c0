package names

import (
	"mime"
	"net/url"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxBytes bounds a file name taken from the server (most file systems
// allow 255 bytes; room is left for ".convoy").
const maxBytes = 240

// fallback is used when neither the server nor the URL offers a name.
const fallback = "download"

// Remote picks a local file name for a download: the filename of the
// Content-Disposition header, else the last segment of the URL path. The
// result is a single, printable path element: no folder, no "..", no control
// characters, at most 240 bytes.
func Remote(contentDisposition, rawURL string) string {
	if contentDisposition != "" {
		if _, params, err := mime.ParseMediaType(contentDisposition); err == nil {
			if n := sanitize(params["filename"]); n != "" {
				return n
			}
		}
	}
	if u, err := url.Parse(rawURL); err == nil {
		// The last element only: a URL of a folder ("/files/") has none.
		if n := sanitize(u.Path[strings.LastIndexByte(u.Path, '/')+1:]); n != "" {
			return n
		}
	}
	return fallback
}

// sanitize reduces name to a safe base name, or "" when nothing usable
// is left.
func sanitize(name string) string {
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
	if len(name) > maxBytes {
		ext := path.Ext(name)
		if len(ext) > 16 || !utf8.ValidString(ext) {
			ext = ""
		}
		name = cutUTF8(name[:len(name)-len(ext)], maxBytes-len(ext)) + ext
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
