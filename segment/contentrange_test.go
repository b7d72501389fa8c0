package segment

import (
	"errors"
	"math"
	"strconv"
	"testing"
)

func TestParseContentRange(t *testing.T) {
	const maxInt = "9223372036854775807"
	tests := []struct {
		in   string
		want ContentRange
		ok   bool
	}{
		{"bytes 0-0/1", ContentRange{0, 0, 1}, true},
		{"bytes 0-99/100", ContentRange{0, 99, 100}, true},
		{"bytes 10-19/*", ContentRange{10, 19, -1}, true},
		{"BYTES 1-2/3", ContentRange{1, 2, 3}, true},
		{"Bytes 1-2/3", ContentRange{1, 2, 3}, true},
		{"  bytes 1-2/3  ", ContentRange{1, 2, 3}, true},
		{"bytes   1-2/3", ContentRange{1, 2, 3}, true},
		{"bytes 007-008/009", ContentRange{7, 8, 9}, true},
		{"bytes 0-" + maxInt + "/*", ContentRange{0, math.MaxInt64, -1}, true},
		{"bytes 0-9223372036854775806/" + maxInt, ContentRange{0, math.MaxInt64 - 1, math.MaxInt64}, true},
		{"bytes " + maxInt + "-" + maxInt + "/*", ContentRange{math.MaxInt64, math.MaxInt64, -1}, true},
		{"bytes 1099511627775-1099511627775/1099511627776", ContentRange{1<<40 - 1, 1<<40 - 1, 1 << 40}, true},

		// Other units, missing unit, missing parts.
		{"", ContentRange{}, false},
		{"bytes", ContentRange{}, false},
		{"bytes ", ContentRange{}, false},
		{"items 0-1/2", ContentRange{}, false},
		{"bytes=0-1/2", ContentRange{}, false},
		{"0-1/2", ContentRange{}, false},
		{"bytes 0-1", ContentRange{}, false},
		{"bytes 0/2", ContentRange{}, false},
		{"bytes -1/2", ContentRange{}, false},
		{"bytes 0-/2", ContentRange{}, false},
		{"bytes 0-1/", ContentRange{}, false},
		{"bytes */2", ContentRange{}, false},
		{"bytes */*", ContentRange{}, false},
		{"bytes 0-1/2/3", ContentRange{}, false},
		{"bytes 0-1-2/3", ContentRange{}, false},
		{"bytes 0-1/2, 3-4/5", ContentRange{}, false},
		// Spaces inside the numbers, tabs.
		{"bytes 0 -1/2", ContentRange{}, false},
		{"bytes 0- 1/2", ContentRange{}, false},
		{"bytes 0-1 /2", ContentRange{}, false},
		{"bytes 0-1/ 2", ContentRange{}, false},
		{"bytes\t0-1/2", ContentRange{}, false},
		// Signs, non-digits.
		{"bytes -0-1/2", ContentRange{}, false},
		{"bytes +0-1/2", ContentRange{}, false},
		{"bytes 0-+1/2", ContentRange{}, false},
		{"bytes 0-1/+2", ContentRange{}, false},
		{"bytes 0-1/-2", ContentRange{}, false},
		{"bytes 0x0-0x1/2", ContentRange{}, false},
		{"bytes 1e2-1e3/1e4", ContentRange{}, false},
		{"bytes ０-１/２", ContentRange{}, false},
		// Order and bounds.
		{"bytes 2-1/3", ContentRange{}, false},
		{"bytes 0-2/2", ContentRange{}, false},
		{"bytes 0-3/2", ContentRange{}, false},
		{"bytes 0-0/0", ContentRange{}, false},
		// Overflow of int64, huge numbers.
		{"bytes 0-9223372036854775808/*", ContentRange{}, false},
		{"bytes 0-1/9223372036854775808", ContentRange{}, false},
		{"bytes 9223372036854775808-9223372036854775809/*", ContentRange{}, false},
		{"bytes 0-1/99999999999999999999", ContentRange{}, false},
		{"bytes 0-1/00000000000000000002", ContentRange{}, false}, // 20 digits
		{"bytes 0-18446744073709551615/*", ContentRange{}, false},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			got, err := ParseContentRange(tt.in)
			if tt.ok {
				if err != nil {
					t.Fatalf("ParseContentRange(%q) = %v, want %+v", tt.in, err, tt.want)
				}
				if got != tt.want {
					t.Fatalf("ParseContentRange(%q) = %+v, want %+v", tt.in, got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseContentRange(%q) = %+v, want an error", tt.in, got)
			}
			if !errors.Is(err, errContentRange) {
				t.Errorf("error %v does not wrap errContentRange", err)
			}
			if got != (ContentRange{}) {
				t.Errorf("on error the value is %+v, want zero", got)
			}
		})
	}
}

func TestContentRangeString(t *testing.T) {
	tests := []struct {
		cr   ContentRange
		want string
	}{
		{ContentRange{0, 0, 1}, "bytes 0-0/1"},
		{ContentRange{5, 9, -1}, "bytes 5-9/*"},
		{ContentRange{100, 199, 1000}, "bytes 100-199/1000"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.cr.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
			back, err := ParseContentRange(tt.want)
			if err != nil || back != tt.cr {
				t.Fatalf("re-parse = %+v, %v; want %+v", back, err, tt.cr)
			}
		})
	}
}

func TestParseUnsatisfiedTotal(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"bytes */0", 0, true},
		{"bytes */1000", 1000, true},
		{"BYTES */5", 5, true},
		{"  bytes   */5 ", 5, true},
		{"bytes */9223372036854775807", math.MaxInt64, true},
		{"", 0, false},
		{"bytes", 0, false},
		{"bytes */", 0, false},
		{"bytes */*", 0, false},
		{"bytes */-1", 0, false},
		{"bytes */+1", 0, false},
		{"bytes */ 1", 0, false},
		{"bytes */9223372036854775808", 0, false},
		{"bytes 0-1/2", 0, false},
		{"items */5", 0, false},
		{"*/5", 0, false},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			got, ok := ParseUnsatisfiedTotal(tt.in)
			if ok != tt.ok || (ok && got != tt.want) {
				t.Fatalf("ParseUnsatisfiedTotal(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// FuzzParseContentRange checks that the parser never panics and that what
// it accepts is a sane range that survives a round trip through String.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{
		"bytes 0-0/1",
		"bytes 0-99/100",
		"bytes 10-19/*",
		"BYTES 1-2/3",
		"bytes   1-2/3 ",
		"bytes 007-008/009",
		"bytes 0-9223372036854775807/*",
		"bytes 0-9223372036854775808/*",
		"bytes */100",
		"bytes 2-1/3",
		"bytes 0-2/2",
		"bytes +1-2/3",
		"bytes -1-2/3",
		"bytes 0-1/2/3",
		"items 0-1/2",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cr, err := ParseContentRange(s)
		if err != nil {
			if cr != (ContentRange{}) {
				t.Fatalf("ParseContentRange(%q) = %+v with error %v", s, cr, err)
			}
			return
		}
		if cr.First < 0 || cr.First > cr.Last {
			t.Fatalf("ParseContentRange(%q) = %+v: first not in [0, last]", s, cr)
		}
		if cr.Total != -1 && (cr.Total < 0 || cr.Last >= cr.Total) {
			t.Fatalf("ParseContentRange(%q) = %+v: last not below total", s, cr)
		}
		again, err := ParseContentRange(cr.String())
		if err != nil || again != cr {
			t.Fatalf("ParseContentRange(%q) = %+v, but its String %q parses as %+v, %v", s, cr, cr.String(), again, err)
		}
	})
}
