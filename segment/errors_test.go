package segment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		name, in string
		want     time.Duration
	}{
		{"empty", "", 0},
		{"spaces", "   ", 0},
		{"seconds 1", "1", time.Second},
		{"seconds 120", "120", 2 * time.Minute},
		{"seconds padded", " 7 ", 7 * time.Second},
		{"seconds 0", "0", 0},
		{"seconds negative", "-5", 0},
		{"seconds capped at a day", "999999999", 24 * time.Hour},
		{"seconds beyond int64", "99999999999999999999", 0},
		{"seconds fraction", "1.5", 0},
		{"seconds with a plus sign", "+5", 0},
		{"date in 90s", date(90 * time.Second), 90 * time.Second},
		{"date in 1h", date(time.Hour), time.Hour},
		{"date now", date(0), 0},
		{"date past", date(-time.Hour), 0},
		{"date RFC 850", now.Add(time.Minute).Format("Monday, 02-Jan-06 15:04:05 GMT"), time.Minute},
		{"date ANSI C", now.Add(time.Minute).Format(time.ANSIC), time.Minute},
		{"garbage", "soon", 0},
		{"garbage with digits", "10 seconds", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseRetryAfter(tt.in, now); got != tt.want {
				t.Fatalf("ParseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestStatusErrorTemporary(t *testing.T) {
	tests := []struct {
		code int
		want bool
	}{
		{400, false}, {401, false}, {403, false}, {404, false}, {405, false},
		{408, true}, {410, false}, {416, false}, {425, true}, {429, true},
		{500, true}, {501, false}, {502, true}, {503, true}, {504, true},
		{505, false}, {507, true}, {599, true},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.code), func(t *testing.T) {
			e := &StatusError{Code: tt.code}
			if got := e.Temporary(); got != tt.want {
				t.Errorf("Temporary() = %v, want %v", got, tt.want)
			}
			if got := IsPermanent(fmt.Errorf("wrapped: %w", e)); got == tt.want {
				t.Errorf("IsPermanent = %v, want %v", got, !tt.want)
			}
		})
	}
}

func TestIsPermanent(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"remote changed", fmt.Errorf("x: %w", ErrRemoteChanged), true},
		{"range ignored", fmt.Errorf("x: %w", ErrRangeIgnored), true},
		{"protocol", &ProtocolError{URL: "u", Reason: "r"}, true},
		{"write", &WriteError{Offset: 1, Err: io.ErrShortWrite}, true},
		{"redirect", &RedirectError{"no"}, true},
		{"backoff permanent", backoff.Permanent(errors.New("x")), true},
		// Final only at first contact, by FailFast.
		{"dns not found", &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}, false},
		{"unreachable", &UnreachableError{Host: "h", Cause: "connection refused"}, false},
		{"dns timeout", &net.DNSError{Err: "timeout", Name: "x", IsTimeout: true}, false},
		{"stalled", ErrStalled, false},
		{"unexpected EOF", io.ErrUnexpectedEOF, false},
		{"plain", errors.New("connection reset by peer"), false},
		{"deadline", context.DeadlineExceeded, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsPermanent(tt.err); got != tt.want {
				t.Fatalf("IsPermanent(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestWriteErrorUnwrap(t *testing.T) {
	err := error(&WriteError{Offset: 42, Err: errDiskFull})
	if !errors.Is(err, errDiskFull) {
		t.Fatalf("%v does not unwrap to its cause", err)
	}
	if got, want := err.Error(), "writing at offset 42: "+errDiskFull.Error(); got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}

// Every way a host cannot be reached is an UnreachableError naming the host
// and the cause; other transport errors are not.
func TestUnreachable(t *testing.T) {
	dial := func(errno syscall.Errno) error {
		return &url.Error{Op: "Get", URL: "http://files.example:8080/f", Err: &net.OpError{Op: "dial", Net: "tcp",
			Addr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 8080}, Err: os.NewSyscallError("connect", errno)}}
	}
	for _, tt := range []struct {
		name string
		err  error
		want string // "" for not unreachable
	}{
		{"refused", dial(syscall.ECONNREFUSED), "cannot reach files.example:8080: connection refused"},
		{"no route", dial(syscall.EHOSTUNREACH), "cannot reach files.example:8080: no route to host"},
		{"network down", dial(syscall.ENETUNREACH), "cannot reach files.example:8080: network unreachable"},
		{"no such host", &url.Error{Op: "Get", URL: "http://nosuch.example/f", Err: &net.OpError{Op: "dial", Net: "tcp",
			Err: &net.DNSError{Err: "no such host", Name: "nosuch.example", IsNotFound: true}}}, "cannot reach nosuch.example: no such host"},
		{"dns timeout", &net.DNSError{Err: "i/o timeout", Name: "x", IsTimeout: true}, ""},
		{"reset", dial(syscall.ECONNRESET), ""},
		{"dial timeout", dial(syscall.ETIMEDOUT), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := unreachable(tt.err)
			switch {
			case tt.want == "" && u != nil:
				t.Fatalf("unreachable(%v) = %v, want nil", tt.err, u)
			case tt.want != "" && (u == nil || u.Error() != tt.want):
				t.Fatalf("unreachable(%v) = %v, want %q", tt.err, u, tt.want)
			}
		})
	}
}
