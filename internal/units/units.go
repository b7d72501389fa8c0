// Package units reads and writes byte counts the way people type them.
package units

import (
	"fmt"
	"strings"
)

// FormatBytes renders n with a binary unit, e.g. "1.5 GiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit || m <= -unit; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	if (v >= 1023.95 || v <= -1023.95) && exp < 5 {
		v /= unit // "1024.0 KiB" reads better as "1.0 MiB"
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[exp])
}

// ParseSize reads a positive byte count with an optional binary suffix K, M,
// G or T, optionally followed by "B" or "iB": "512K", "1M", "2GiB", "4096".
func ParseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "IB"), "B")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	if t == "" {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	var v int64
	for _, r := range t {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("%q is not a size (use digits with K, M or G)", s)
		}
		if v > (1<<62)/10 {
			return 0, fmt.Errorf("%q is too large", s)
		}
		v = v*10 + int64(r-'0')
	}
	if v > (1<<62)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	if v == 0 {
		return 0, fmt.Errorf("%q must be more than zero", s)
	}
	return v * mult, nil
}
