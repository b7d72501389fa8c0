// Package names checks file names that come from a list or a document
// (an input file's out=, a Metalink's file name) rather than typed by the
// user: such a name may name subfolders of the download's folder, never a
// way out of it.
package names

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// CheckRelative says why name cannot name a file inside the download's
// folder, or returns nil. It must be relative, without "." or ".."
// elements, empty elements, a trailing slash or control characters, no
// element may be a device name (CON, NUL, COM1 and the like, which name a
// device rather than a file on Windows and on shares it mounts), and each
// element is at most 255 bytes.
func CheckRelative(name string) error {
	switch {
	case name == "":
		return errors.New("an empty name")
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("%q is an absolute path; give a name relative to the folder", name)
	case strings.ContainsRune(name, '\\'):
		return fmt.Errorf("%q has a backslash; separate folders with /", name)
	}
	for _, r := range name {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return fmt.Errorf("%q has a control character or invalid UTF-8", name)
		}
	}
	for _, elem := range strings.Split(name, "/") {
		switch {
		case elem == "..":
			return fmt.Errorf("%q leads out of the folder (..)", name)
		case elem == "" || elem == ".":
			return fmt.Errorf("%q has an empty or \".\" element", name)
		case len(elem) > 255:
			return fmt.Errorf("%q has an element longer than 255 bytes", name)
		case isDevice(elem):
			return fmt.Errorf("%q names a device (%s), not a file", name, elem)
		}
	}
	return nil
}

// isDevice reports whether elem is a reserved device name of Windows, with
// or without an extension ("nul.txt" is the device too).
func isDevice(elem string) bool {
	base, _, _ := strings.Cut(elem, ".")
	base = strings.ToUpper(strings.TrimRight(base, " "))
	switch base {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if len(base) == 4 && (strings.HasPrefix(base, "COM") || strings.HasPrefix(base, "LPT")) {
		return base[3] >= '1' && base[3] <= '9'
	}
	return false
}
