package segment

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ContentRange is a parsed "Content-Range: bytes first-last/total" value.
// Last is inclusive, as on the wire. Total is -1 when the server sent "*".
type ContentRange struct {
	First, Last, Total int64
}

// errContentRange reports a Content-Range value that is not of the form
// "bytes first-last/total" with sane numbers.
var errContentRange = errors.New("malformed Content-Range")

// ParseContentRange parses the value of a Content-Range header of a 206
// answer. It accepts only a satisfied byte range ("bytes a-b/n" or
// "bytes a-b/*"), with a <= b, b < n when n is known, and every number a
// non-negative decimal that fits in an int64.
func ParseContentRange(v string) (ContentRange, error) {
	unit, rest, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(unit, "bytes") {
		return ContentRange{}, fmt.Errorf("%w: %q", errContentRange, v)
	}
	rest = strings.TrimLeft(rest, " ")
	span, total, ok := strings.Cut(rest, "/")
	if !ok {
		return ContentRange{}, fmt.Errorf("%w: %q", errContentRange, v)
	}
	first, last, ok := strings.Cut(span, "-")
	if !ok {
		return ContentRange{}, fmt.Errorf("%w: %q", errContentRange, v)
	}
	cr := ContentRange{Total: -1}
	var err error
	if cr.First, err = parseByteCount(first); err != nil {
		return ContentRange{}, fmt.Errorf("%w: %q", errContentRange, v)
	}
	if cr.Last, err = parseByteCount(last); err != nil {
		return ContentRange{}, fmt.Errorf("%w: %q", errContentRange, v)
	}
	if total != "*" {
		if cr.Total, err = parseByteCount(total); err != nil {
			return ContentRange{}, fmt.Errorf("%w: %q", errContentRange, v)
		}
	}
	if cr.First > cr.Last || (cr.Total >= 0 && cr.Last >= cr.Total) {
		return ContentRange{}, fmt.Errorf("%w: %q", errContentRange, v)
	}
	return cr, nil
}

// ParseUnsatisfiedTotal parses the "bytes */n" form sent with a 416 answer and
// returns n.
func ParseUnsatisfiedTotal(v string) (int64, bool) {
	unit, rest, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(unit, "bytes") {
		return 0, false
	}
	n, ok := strings.CutPrefix(strings.TrimLeft(rest, " "), "*/")
	if !ok {
		return 0, false
	}
	total, err := parseByteCount(n)
	return total, err == nil
}

// parseByteCount parses a non-negative decimal with digits only (no sign, no
// spaces) that fits in an int64.
func parseByteCount(s string) (int64, error) {
	if s == "" || len(s) > 19 {
		return 0, errContentRange
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errContentRange
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// String formats the range as a Content-Range value.
func (c ContentRange) String() string {
	if c.Total < 0 {
		return fmt.Sprintf("bytes %d-%d/*", c.First, c.Last)
	}
	return fmt.Sprintf("bytes %d-%d/%d", c.First, c.Last, c.Total)
}
