package merge

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

var helloSHA256 = sha256.Sum256([]byte("hello"))

func TestParseChecksum(t *testing.T) {
	hexSum := hex.EncodeToString(helloSHA256[:])
	b64 := base64.StdEncoding.EncodeToString(helloSHA256[:])
	tests := []struct {
		in   string
		algo string // "" for an error
	}{
		{"sha256:" + hexSum, "sha256"},
		{"SHA256:" + strings.ToUpper(hexSum), "sha256"},
		{" sha256 : " + hexSum + " ", "sha256"},
		{"sha-256=" + b64, "sha256"},
		{"sha-256=" + hexSum, "sha256"}, // aria2's input files
		{"sha-256=" + strings.ToUpper(hexSum), "sha256"},
		{"md5:5d41402abc4b2a76b9719d911017c592", "md5"},
		{"sha1:aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d", "sha1"},
		{"sha512:" + strings.Repeat("00", 64), "sha512"},
		{"sha256:" + hexSum[:62], ""},   // short
		{"sha256:" + hexSum + "00", ""}, // long
		{"sha256:zz" + hexSum[2:], ""},  // not hex
		{"sha256:" + hexSum[1:], ""},    // odd length
		{"sha-256=" + hexSum[2:], ""},   // neither hex of 32 bytes nor base64
		{"sha-256=" + b64[:10], ""},     // short base64
		{"crc32:00000000", ""},
		{hexSum, ""},
		{"", ""},
		{"sha256:", ""},
	}
	for _, tt := range tests {
		c, err := ParseChecksum(tt.in)
		if tt.algo == "" {
			if err == nil {
				t.Errorf("ParseChecksum(%q) = %v, want an error", tt.in, c)
			}
			// The message speaks of digests, not of a library's decoder.
			if err != nil && strings.Contains(err.Error(), "encoding/") {
				t.Errorf("ParseChecksum(%q): %v", tt.in, err)
			}
			continue
		}
		if err != nil || c.Algo != tt.algo || !bytes.Equal(c.Sum, helloSHA256[:]) && tt.algo == "sha256" {
			t.Errorf("ParseChecksum(%q) = %v, %v; want %s", tt.in, c, err, tt.algo)
		}
	}
}

func TestParseDigestHeader(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString(helloSHA256[:])
	tests := []struct {
		in   string
		want []string // algorithms found, in order
	}{
		{"sha-256=:" + b64 + ":", []string{"sha256"}},
		{"sha-256=:" + b64 + ":, sha-512=:" + base64.StdEncoding.EncodeToString(make([]byte, 64)) + ":", []string{"sha256", "sha512"}},
		{"SHA-256=" + b64, []string{"sha256"}},
		{"crc32c=:AAAAAA==:, sha-256=:" + b64 + ":", []string{"sha256"}},
		{"sha-256=:not base64:", nil},
		{"sha-256", nil},
		{"", nil},
		{"md5=XUFAKrxLKna5cZ2REBfFkg==", []string{"md5"}},
	}
	for _, tt := range tests {
		var got []string
		for _, c := range ParseDigestHeader(tt.in) {
			got = append(got, c.Algo)
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("ParseDigestHeader(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestPrefixHasherResumesFromState(t *testing.T) {
	data := bytes.Repeat([]byte("convoy "), 300000)
	want := sha256.Sum256(data)
	r := bytes.NewReader(data)
	h, err := NewPrefixHasher("sha256", r, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Advance(1234567); err != nil {
		t.Fatal(err)
	}
	pos, state, err := h.State()
	if err != nil || pos != 1234567 {
		t.Fatalf("State = %d, %v", pos, err)
	}
	h2, err := NewPrefixHasher("sha256", r, pos, state)
	if err != nil {
		t.Fatal(err)
	}
	if err := h2.Advance(int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if err := h2.Verify(Checksum{Algo: "sha256", Sum: want[:]}); err != nil {
		t.Error(err)
	}
	if err := h2.Verify(Checksum{Algo: "sha256", Sum: make([]byte, 32)}); !errors.Is(err, ErrChecksum) {
		t.Errorf("Verify of a wrong sum: %v", err)
	}
	if _, err := NewPrefixHasher("sha256", r, 10, nil); err == nil {
		t.Error("a position without a state was accepted")
	}
	if _, err := NewPrefixHasher("sha256", r, 10, []byte("garbage")); err == nil {
		t.Error("a garbage state was accepted")
	}
	if err := h2.Advance(int64(len(data)) + 1); err == nil {
		t.Error("advancing past the end of the file succeeded")
	}
}

func FuzzParseChecksum(f *testing.F) {
	f.Add("sha256:" + hex.EncodeToString(helloSHA256[:]))
	f.Add("sha-256=" + base64.StdEncoding.EncodeToString(helloSHA256[:]))
	f.Add("md5:5d41402abc4b2a76b9719d911017c592")
	f.Add("sha1:zz")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseChecksum(s)
		if err != nil {
			return
		}
		h, err := NewHash(c.Algo)
		if err != nil || len(c.Sum) != h.Size() {
			t.Fatalf("ParseChecksum(%q) = %v with a bad algorithm or length", s, c)
		}
		if back, err := ParseChecksum(c.String()); err != nil || back.String() != c.String() {
			t.Fatalf("%v does not round-trip: %v %v", c, back, err)
		}
	})
}

func FuzzParseDigestHeader(f *testing.F) {
	f.Add("sha-256=:" + base64.StdEncoding.EncodeToString(helloSHA256[:]) + ":")
	f.Add("SHA-256=" + base64.StdEncoding.EncodeToString(helloSHA256[:]) + ", md5=XUFAKrxLKna5cZ2REBfFkg==")
	f.Add("crc32c=:AAAAAA==:;q=1")
	f.Add(",,=:")
	f.Fuzz(func(t *testing.T, v string) {
		for _, c := range ParseDigestHeader(v) {
			h, err := NewHash(c.Algo)
			if err != nil || len(c.Sum) != h.Size() {
				t.Fatalf("ParseDigestHeader(%q) gave %v", v, c)
			}
		}
	})
}
