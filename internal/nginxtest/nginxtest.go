// Package nginxtest runs a real nginx on loopback for tests: one server
// block per Site, each on a free port of 127.0.0.1 serving a folder of its
// own (so one mirror may serve another file under the same path), with an
// access log per site that the test reads back.
//
// nginx runs as a child of the test process, in the foreground and as a
// single process (daemon off, master_process off), with its configuration,
// pid file, logs and temporary folders in t.TempDir(). It is stopped by its
// PID when the test ends, and killed by the kernel should the test process
// die first (Linux: the parent-death signal). Where nginx is not installed,
// the test is skipped, saying how to install it, or fails under CI (CI
// set), where scripts/deps.sh (make test) installs it.
package nginxtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Site is one server block.
type Site struct {
	// Root is the folder served: URL path /p is the file Root/p.
	Root string
	// Rate, when above 0, limits every answer to Rate bytes a second
	// (limit_rate), paced from its first bytes (sendfile_max_chunk 64k).
	Rate int64
}

// Nginx is a running nginx.
type Nginx struct {
	t       testing.TB
	dir     string
	bin     string
	sites   []Site
	ports   []int // of the sites, then the status server
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	stopped bool
}

// Request is one line of a site's access log.
type Request struct {
	Method string
	URI    string // as asked, with its query
	Range  string // the Range header; "" without one
	Status int
	Body   int64 // $body_bytes_sent: bytes of the body sent
	Sent   int64 // $bytes_sent: all bytes sent, headers included
	// Complete is set when the answer was sent in full
	// ($request_completion), not cut short by the client.
	Complete bool
}

// Bounds parses Range "bytes=A-B" into the range [A, B+1); ok is false for
// a request without a Range, or with one of another form.
func (r Request) Bounds() (start, end int64, ok bool) {
	var a, b int64
	if _, err := fmt.Sscanf(r.Range, "bytes=%d-%d", &a, &b); err != nil || b < a {
		return 0, 0, false
	}
	return a, b + 1, true
}

// The names nginx is looked for under, besides the PATH (where /usr/sbin
// often is not, for a user other than root).
var places = []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"}

// Find returns the nginx binary's path, or "" when nginx is not installed.
func Find() string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	for _, p := range places {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// inCI reports whether the tests run under continuous integration (CI set,
// as every CI service sets it).
func inCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v != "" && v != "0" && v != "false"
}

// startTries bounds the starts on new ports when another process took a
// port between its choice and nginx's bind.
const startTries = 5

// Start starts nginx serving sites, waits until it answers, and stops it
// when t ends (reading its error log into t's output if t failed). Without
// nginx it skips t, or fails t under CI.
func Start(t testing.TB, sites ...Site) *Nginx {
	t.Helper()
	bin := Find()
	if bin == "" {
		if inCI() {
			t.Fatal("nginx is not installed, and CI is set, so this test may not skip: make test installs it (scripts/deps.sh); did CI run make test?")
		}
		t.Skip("NOT TESTED: nginx is not installed; install it (as root: apt-get install nginx-light, which make test does) to run the tests against real servers; under CI this is a failure")
	}
	if len(sites) == 0 {
		t.Fatal("nginxtest: no site to serve")
	}
	for i, s := range sites {
		if !filepath.IsAbs(s.Root) {
			t.Fatalf("nginxtest: site %d: the root %q is not an absolute path", i, s.Root)
		}
	}
	n := &Nginx{t: t, dir: t.TempDir(), bin: bin, sites: sites}
	t.Cleanup(func() {
		n.Stop()
		if t.Failed() {
			t.Logf("nginx's error log:\n%s", n.errorLog())
		}
	})
	for try := 1; ; try++ {
		err := n.start()
		if err == nil {
			return n
		}
		n.Stop()
		if !errors.Is(err, errPortTaken) || try == startTries {
			t.Fatalf("nginx did not start: %v\nits error log:\n%s", err, n.errorLog())
		}
	}
}

var errPortTaken = errors.New("a port was taken")

// start writes the configuration for new free ports and starts nginx on
// it, and waits until it answers.
func (n *Nginx) start() error {
	ports, err := pickPorts(len(n.sites) + 1)
	if err != nil {
		return err
	}
	n.ports = ports
	conf := filepath.Join(n.dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(n.config()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(n.path("error.log"), nil, 0o644); err != nil {
		return err
	}
	stderr, err := os.Create(n.path("stderr.log"))
	if err != nil {
		return err
	}
	defer stderr.Close() // the child has its own descriptor
	cmd := exec.Command(n.bin, "-p", n.dir+"/", "-c", conf)
	cmd.Dir = n.dir
	cmd.Stdout, cmd.Stderr = stderr, stderr
	for _, kv := range os.Environ() {
		// NGINX passes listening sockets to a new binary: never ours.
		if !strings.HasPrefix(kv, "NGINX=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	n.cmd, n.exited, n.stopped = cmd, make(chan struct{}), false
	go func() {
		n.waitErr = cmd.Wait()
		close(n.exited)
	}()
	return n.waitReady()
}

func (n *Nginx) path(name string) string { return filepath.Join(n.dir, name) }

// config is nginx's configuration: every path inside n.dir.
func (n *Nginx) config() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("daemon off;")
	p("master_process off;")
	p("pid %s;", n.path("nginx.pid"))
	p("error_log %s info;", n.path("error.log"))
	p("events { worker_connections 512; }")
	p("http {")
	p("  log_format nginxtest \"$request_method\\t$request_uri\\t$http_range\\t$status\\t$body_bytes_sent\\t$bytes_sent\\t$request_completion\";")
	p("  access_log off;")
	for _, tmp := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		p("  %s_temp_path %s;", tmp, n.path("tmp-"+tmp))
	}
	p("  types { application/metalink4+xml meta4; }")
	p("  default_type application/octet-stream;")
	p("  sendfile on;")
	p("  keepalive_requests 100000;")
	for i, s := range n.sites {
		p("  server {")
		p("    listen 127.0.0.1:%d;", n.ports[i])
		p("    root %s;", s.Root)
		p("    access_log %s nginxtest;", n.logPath(i))
		if s.Rate > 0 {
			p("    sendfile_max_chunk 64k;")
			p("    limit_rate %d;", s.Rate)
		}
		p("  }")
	}
	// The status server counts nginx's open connections (see Requests).
	p("  server {")
	p("    listen 127.0.0.1:%d;", n.ports[len(n.sites)])
	p("    location = /status { stub_status; }")
	p("  }")
	p("}")
	return b.String()
}

func (n *Nginx) logPath(i int) string { return n.path(fmt.Sprintf("access-%d.log", i)) }

// pickPorts is freePorts; a test makes it pick a port in use.
var pickPorts = freePorts

// freePorts returns k ports of 127.0.0.1 that were free a moment ago.
func freePorts(k int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range k {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// readyWithin bounds the wait for nginx to answer after its start.
const readyWithin = 20 * time.Second

// waitReady waits until the status server answers. nginx opens every
// listening socket before it serves any: once it answers, every site
// does.
func (n *Nginx) waitReady() error {
	deadline := time.Now().Add(readyWithin)
	for {
		select {
		case <-n.exited:
			if strings.Contains(n.errorLog(), "Address already in use") {
				return errPortTaken
			}
			return fmt.Errorf("nginx exited: %v", n.waitErr)
		default:
		}
		if _, err := n.status(); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("nginx does not answer after %v: %v", readyWithin, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// status fetches the status server's page (HTTP/1.0: no connection stays
// open, and no goroutine outlives it).
func (n *Nginx) status() (string, error) {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", n.ports[len(n.sites)]), 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(c, "GET /status HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := io.ReadAll(c)
	if err != nil {
		return "", err
	}
	if !bytes.HasPrefix(resp, []byte("HTTP/1.1 200")) && !bytes.HasPrefix(resp, []byte("HTTP/1.0 200")) {
		return "", fmt.Errorf("the status server answered %q", firstLine(resp))
	}
	return string(resp), nil
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return strings.TrimSpace(string(line))
}

var activeRe = regexp.MustCompile(`Active connections: (\d+)`)

// idleWithin bounds the wait for nginx to close its connections.
const idleWithin = 30 * time.Second

// settle waits until nginx holds no connection but the status request's
// own: every request it answered is then logged (nginx logs a request when
// it ends, before it closes or keeps its connection), answers cut short by
// the client included.
func (n *Nginx) settle() error {
	deadline := time.Now().Add(idleWithin)
	for {
		page, err := n.status()
		if err != nil {
			return fmt.Errorf("asking nginx for its connections: %v", err)
		}
		m := activeRe.FindStringSubmatch(page)
		if m == nil {
			return fmt.Errorf("the status page does not count connections: %q", page)
		}
		if m[1] == "1" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nginx still holds %s connections after %v (a client kept them open?)", m[1], idleWithin)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// URL is site i's address, "http://127.0.0.1:PORT", without a slash.
func (n *Nginx) URL(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", n.ports[i]) }

// Requests returns site i's requests, in the order they ended. It first
// waits until nginx has closed every connection of its clients, so that
// every request is logged: call it once the client is done.
func (n *Nginx) Requests(i int) []Request {
	n.t.Helper()
	if !n.stopped {
		if err := n.settle(); err != nil {
			n.t.Fatalf("nginx: %v", err)
		}
	}
	f, err := os.Open(n.logPath(i))
	if err != nil {
		n.t.Fatalf("nginx's access log: %v", err)
	}
	defer f.Close()
	var out []Request
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		r, err := parseLine(sc.Text())
		if err != nil {
			n.t.Fatalf("nginx's access log %s: %v", n.logPath(i), err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		n.t.Fatalf("nginx's access log: %v", err)
	}
	return out
}

// parseLine decodes a line of the nginxtest log format.
func parseLine(line string) (Request, error) {
	f := strings.Split(line, "\t")
	if len(f) != 7 {
		return Request{}, fmt.Errorf("line %q: %d fields, want 7", line, len(f))
	}
	r := Request{Method: f[0], URI: f[1], Range: f[2], Complete: f[6] == "OK"}
	if r.Range == "-" {
		r.Range = ""
	}
	var err error
	if r.Status, err = strconv.Atoi(f[3]); err != nil {
		return r, fmt.Errorf("line %q: status: %v", line, err)
	}
	if r.Body, err = strconv.ParseInt(f[4], 10, 64); err != nil {
		return r, fmt.Errorf("line %q: body bytes: %v", line, err)
	}
	if r.Sent, err = strconv.ParseInt(f[5], 10, 64); err != nil {
		return r, fmt.Errorf("line %q: bytes sent: %v", line, err)
	}
	return r, nil
}

// stopWithin bounds the wait for nginx to exit once told to.
const stopWithin = 10 * time.Second

// Stop stops nginx (SIGTERM to its PID, SIGKILL if it has not exited
// within stopWithin) and waits for it to exit. It may be called more than
// once; t's cleanup calls it.
func (n *Nginx) Stop() {
	if n.cmd == nil || n.stopped {
		return
	}
	n.stopped = true
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
		return
	case <-time.After(stopWithin):
	}
	n.t.Errorf("nginx (pid %d) did not exit within %v of SIGTERM: killing it", n.cmd.Process.Pid, stopWithin)
	_ = n.cmd.Process.Kill()
	<-n.exited
}

// errorLog is the end of nginx's error log and of what it wrote to its
// standard error, for a failure's message.
func (n *Nginx) errorLog() string {
	var b strings.Builder
	for _, name := range []string{"stderr.log", "error.log"} {
		data, err := os.ReadFile(n.path(name))
		if err != nil || len(data) == 0 {
			continue
		}
		if len(data) > 8<<10 {
			data = append([]byte("[...]\n"), data[len(data)-8<<10:]...)
		}
		fmt.Fprintf(&b, "--- %s\n%s", name, data)
	}
	return b.String()
}
