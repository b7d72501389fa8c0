package merge

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"
)

// algoByHexLength names the algorithm of a bare hex digest by its length.
var algoByHexLength = map[int]string{32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}

// FindInSums reads a checksum list in the formats of sha256sum and friends
// ("HEX  NAME", "HEX *NAME") or of BSD tools ("SHA256 (NAME) = HEX") and
// returns the digest listed for the first of names that it lists, compared
// by base name: the output's name, then the server's (a list names the
// upstream files, and -o renames them). Lines it cannot read are skipped;
// listing none of the names, or two digests that disagree for the one
// found, is an error.
func FindInSums(r io.Reader, names ...string) (Checksum, error) {
	want := map[string]bool{}
	var bases []string
	for _, n := range names {
		if b := path.Base(n); !want[b] {
			want[b] = true
			bases = append(bases, b)
		}
	}
	found := map[string]Checksum{}
	conflict := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		c, file, ok := parseSumsLine(sc.Text())
		base := path.Base(file)
		if !ok || !want[base] {
			continue
		}
		prev, seen := found[base]
		if seen && prev.Algo == c.Algo && prev.String() != c.String() {
			conflict[base] = true
		}
		if !seen || rankOf(c.Algo) > rankOf(prev.Algo) {
			found[base] = c
		}
	}
	if err := sc.Err(); err != nil {
		return Checksum{}, err
	}
	for _, b := range bases {
		if conflict[b] {
			return Checksum{}, fmt.Errorf("two different digests are listed for %s", b)
		}
		if c, ok := found[b]; ok {
			return c, nil
		}
	}
	return Checksum{}, fmt.Errorf("no digest for %s in the checksum list", strings.Join(bases, " or "))
}

func rankOf(algo string) int {
	return map[string]int{"md5": 1, "sha1": 2, "sha256": 3, "sha512": 4}[algo]
}

// parseSumsLine reads one line of a checksum list.
func parseSumsLine(line string) (Checksum, string, bool) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return Checksum{}, "", false
	}
	// BSD: "SHA256 (name) = hex"
	if open := strings.Index(line, " ("); open > 0 {
		if closeEq := strings.LastIndex(line, ") = "); closeEq > open {
			algo, ok := algos[strings.ToLower(line[:open])]
			if !ok {
				return Checksum{}, "", false
			}
			c, err := newChecksum(algo, line[closeEq+4:], false)
			return c, line[open+2 : closeEq], err == nil
		}
	}
	// GNU: "hex  name" or "hex *name"
	sum, file, ok := strings.Cut(line, " ")
	if !ok {
		return Checksum{}, "", false
	}
	algo, ok := algoByHexLength[len(sum)]
	if !ok {
		return Checksum{}, "", false
	}
	file = strings.TrimPrefix(strings.TrimPrefix(file, " "), "*")
	c, err := newChecksum(algo, sum, false)
	return c, file, err == nil && file != ""
}
