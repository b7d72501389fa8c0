package merge

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"strings"
)

// algoByHexLength names the algorithm of a bare hex digest by its length.
var algoByHexLength = map[int]string{32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}

// FindInSums reads a checksum list in the formats of sha256sum and friends
// ("HEX  NAME", "HEX *NAME") or of BSD tools ("SHA256 (NAME) = HEX") and
// returns the digest listed for name, compared by base name. Lines it cannot
// read are skipped; finding no line for name, or two that disagree, is an
// error.
func FindInSums(r io.Reader, name string) (Checksum, error) {
	want := path.Base(name)
	var found *Checksum
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		c, file, ok := parseSumsLine(sc.Text())
		if !ok || path.Base(file) != want {
			continue
		}
		if found != nil && found.String() != c.String() && found.Algo == c.Algo {
			return Checksum{}, fmt.Errorf("two different %s digests are listed for %s", c.Algo, want)
		}
		if found == nil || rankOf(c.Algo) > rankOf(found.Algo) {
			found = &c
		}
	}
	if err := sc.Err(); err != nil {
		return Checksum{}, err
	}
	if found == nil {
		return Checksum{}, fmt.Errorf("no digest for %s in the checksum list", want)
	}
	return *found, nil
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
			c, err := newChecksum(algo, line[closeEq+4:], hex.DecodeString)
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
	c, err := newChecksum(algo, sum, hex.DecodeString)
	return c, file, err == nil && file != ""
}
