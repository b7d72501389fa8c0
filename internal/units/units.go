// Package units reads and writes byte counts the way people type them.
package units

import (
	"fmt"
	"math"
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
// G or T, optionally followed by "B" or "iB": "512K", "1M", "1.5M", "2GiB",
// "4096". A fraction is allowed with a suffix and rounds to whole bytes.
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
	whole, frac, hasFrac := strings.Cut(t, ".")
	if whole == "" && (!hasFrac || frac == "") {
		return 0, fmt.Errorf("%q is not a size (use digits with K, M or G, such as 512K or 1.5M)", s)
	}
	if hasFrac && mult == 1 {
		return 0, fmt.Errorf("%q is not a whole number of bytes (a fraction needs K, M or G, such as 1.5M)", s)
	}
	v, err := digits(whole, s)
	if err != nil {
		return 0, err
	}
	if v > (1<<62)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	total := v * mult
	if hasFrac {
		if len(frac) > 9 {
			frac = frac[:9] // below a byte at every suffix
		}
		f, err := digits(frac, s)
		if err != nil {
			return 0, err
		}
		scale := int64(1)
		for range len(frac) {
			scale *= 10
		}
		// f/scale of mult bytes, rounded to the nearest byte; with mult at
		// most 2^40 a float64 is exact to far below a byte.
		total += int64(math.Round(float64(f) / float64(scale) * float64(mult)))
	}
	if total > 1<<62 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	if total <= 0 {
		return 0, fmt.Errorf("%q must be more than zero", s)
	}
	return total, nil
}

// digits reads a run of decimal digits ("" is zero) of the size s.
func digits(t, s string) (int64, error) {
	var v int64
	for _, r := range t {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("%q is not a size (use digits with K, M or G, such as 512K or 1.5M)", s)
		}
		if v > (1<<62)/10 {
			return 0, fmt.Errorf("%q is too large", s)
		}
		v = v*10 + int64(r-'0')
	}
	return v, nil
}

// FormatExact renders n for a message where the exact count matters: the
// binary unit for people and the bytes for checking, "1.5 GiB (1610612736
// bytes)"; below 1 KiB only the bytes, "512 bytes".
func FormatExact(n int64) string {
	if n < 1024 && n > -1024 {
		if n == 1 {
			return "1 byte"
		}
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%s (%d bytes)", FormatBytes(n), n)
}
