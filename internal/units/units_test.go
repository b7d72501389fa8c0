package units

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64 // 0: an error is expected
	}{
		{"4096", 4096},
		{"1", 1},
		{"1M", 1 << 20},
		{"1m", 1 << 20},
		{"512K", 512 << 10},
		{"512k", 512 << 10},
		{"2G", 2 << 30},
		{"2GiB", 2 << 30},
		{"2gib", 2 << 30},
		{"1MB", 1 << 20},
		{"1MiB", 1 << 20},
		{"1KB", 1 << 10},
		{"3T", 3 << 40},
		{"4096B", 4096},
		{" 1M ", 1 << 20},
		{"\t64K\n", 64 << 10},
		{"4194304T", 1 << 62},
		{"1.5M", 3 << 19},
		{"1.5m", 3 << 19},
		{"0.5K", 512},
		{".5K", 512},
		{"2.25GiB", 9 << 28},
		{"1.0001K", 1024},            // rounds to the nearest byte
		{"0.0001K", 0},               // rounds to nothing: not more than zero
		{"1.123456789123M", 1178030}, // digits past the ninth are below a byte

		{"0", 0},
		{"0M", 0},
		{"-1", 0},
		{"-1M", 0},
		{"+1", 0},
		{"", 0},
		{"   ", 0},
		{"M", 0},
		{"MiB", 0},
		{"B", 0},
		{"1.5", 0}, // a fraction of a byte
		{"1.", 0},
		{"1..5M", 0},
		{".M", 0},
		{"1.5.M", 0},
		{"1,5M", 0},
		{"1 M", 0},
		{"1E", 0},
		{"1P", 0},
		{"1X", 0},
		{"M1", 0},
		{"1MM", 0},
		{"1BB", 0},
		{"0x10", 0},
		{"1e6", 0},
		{"99999999999T", 0},
		{"4194305T", 0},
		{"9223372036854775807", 0},
		{"9223372036854775808", 0},
		{"99999999999999999999999999", 0},
		{"18446744073709551617", 0},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.want == 0 {
				if err == nil {
					t.Fatalf("ParseSize(%q) = %d, want an error", tt.in, got)
				}
				if !strings.Contains(err.Error(), strconv.Quote(tt.in)) {
					t.Errorf("error %q does not quote the input", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSize(%q) = %v, want %d", tt.in, err, tt.want)
			}
			if got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestFormatBytes(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0 B"},
		{1, "1 B"},
		{1023, "1023 B"},
		{-1023, "-1023 B"},
		{1024, "1.0 KiB"},
		{-1024, "-1.0 KiB"},
		{1536, "1.5 KiB"},
		{1 << 20, "1.0 MiB"},
		{5 << 20, "5.0 MiB"},
		{3 << 29, "1.5 GiB"},
		{1 << 40, "1.0 TiB"},
		{1 << 50, "1.0 PiB"},
		{1 << 60, "1.0 EiB"},
		{math.MaxInt64, "8.0 EiB"},
		{math.MinInt64, "-8.0 EiB"},
	}
	for _, tt := range tests {
		t.Run(strconv.FormatInt(tt.in, 10), func(t *testing.T) {
			if got := FormatBytes(tt.in); got != tt.want {
				t.Fatalf("FormatBytes(%d) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestFormatBytesMantissaBelowUnit checks that the number shown never reaches
// 1024 of a unit: just under 1 MiB reads "1.0 MiB", not "1024.0 KiB".
func TestFormatBytesMantissaBelowUnit(t *testing.T) {
	for _, n := range []int64{1<<20 - 1, 1<<30 - 1, 1<<40 - 51} {
		got := FormatBytes(n)
		num, _, _ := strings.Cut(got, " ")
		f, err := strconv.ParseFloat(num, 64)
		if err != nil {
			t.Fatalf("FormatBytes(%d) = %q: %v", n, got, err)
		}
		if f >= 1024 {
			t.Errorf("FormatBytes(%d) = %q: rounding shows 1024 of a unit instead of 1.0 of the next", n, got)
		}
	}
}

// TestParseFormatAgree checks that a size written by FormatBytes for an exact
// power of the unit parses back to the same count.
func TestParseFormatAgree(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string
	}{
		{"1K", "1.0 KiB"},
		{"3M", "3.0 MiB"},
		{"2G", "2.0 GiB"},
		{"7T", "7.0 TiB"},
	} {
		n, err := ParseSize(tt.in)
		if err != nil {
			t.Fatalf("ParseSize(%q): %v", tt.in, err)
		}
		if got := FormatBytes(n); got != tt.want {
			t.Errorf("FormatBytes(ParseSize(%q)) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1M", "512k", "2GiB", "4096", "0", "-1", "", "1.5M", "99999999999T", "4194304T", "4194304.5T", ".5K", "1.", " 1 ", "1iB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if n != 0 {
				t.Fatalf("ParseSize(%q) = %d with error %v", s, n, err)
			}
			return
		}
		if n <= 0 {
			t.Fatalf("ParseSize(%q) = %d, want > 0", s, n)
		}
		if n > 1<<62 {
			t.Fatalf("ParseSize(%q) = %d, above the 2^62 bound", s, n)
		}
		// FormatBytes must never panic on what ParseSize returns.
		_ = FormatBytes(n)
	})
}

func FuzzFormatBytes(f *testing.F) {
	for _, n := range []int64{0, 1, 1023, 1024, -1024, 1 << 40, math.MaxInt64, math.MinInt64} {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, n int64) {
		s := FormatBytes(n)
		if !strings.HasSuffix(s, "B") {
			t.Fatalf("FormatBytes(%d) = %q, no unit", n, s)
		}
		if (n < 0) != strings.HasPrefix(s, "-") {
			t.Fatalf("FormatBytes(%d) = %q, sign lost", n, s)
		}
	})
}

func TestFormatExact(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{
		{0, "0 bytes"},
		{1, "1 byte"},
		{1023, "1023 bytes"},
		{1024, "1.0 KiB (1024 bytes)"},
		{3 << 29, "1.5 GiB (1610612736 bytes)"},
	} {
		if got := FormatExact(tt.n); got != tt.want {
			t.Errorf("FormatExact(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
