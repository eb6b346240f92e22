package netproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// quiet is how long a test waits to see that nothing arrives: long enough
// for a byte on loopback to arrive many times over, short enough to keep
// the tests fast.
const quiet = 300 * time.Millisecond

// patience bounds every wait for something that must happen.
const patience = 10 * time.Second

// echoServer accepts connections and writes back every line it reads,
// until the test ends. It half-closes its side when the client does.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, c)
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func newProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, patience)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes a line and reads it back within patience.
func roundTrip(t *testing.T, c net.Conn, line string) {
	t.Helper()
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatalf("write: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(patience))
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != line+"\n" {
		t.Fatalf("echo of %q = %q, %v", line, got, err)
	}
}

// silent fails unless c yields no byte, no EOF and no error for quiet.
func silent(t *testing.T, c net.Conn, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(quiet))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s: read %d bytes %q, err %v; want nothing until the deadline", what, n, buf[:n], err)
	}
}

// broken fails unless a read on c ends with EOF or a reset within patience.
func broken(t *testing.T, c net.Conn, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(patience))
	buf := make([]byte, 64)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			continue // echo of something sent before the fault
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: connection still open after %v", what, patience)
		}
		if err == nil {
			continue
		}
		return
	}
}

// TestModes exercises each mode of the proxy over real TCP against an echo
// server: what the connections open before the fault see, and what a
// connection made during and after it sees.
func TestModes(t *testing.T) {
	tests := []struct {
		name string
		// fault breaks the path; old is a connection opened before it.
		fault func(t *testing.T, p *Proxy)
		// old checks the connection opened before the fault.
		old func(t *testing.T, c net.Conn)
		// during checks a connection attempt made while the fault holds.
		during func(t *testing.T, p *Proxy)
		// heal ends the fault; after, old is checked again with afterOld.
		heal     func(t *testing.T, p *Proxy)
		afterOld func(t *testing.T, c net.Conn)
	}{
		{
			name:  "pass through",
			fault: func(t *testing.T, p *Proxy) {},
			old:   func(t *testing.T, c net.Conn) { roundTrip(t, c, "still here") },
			during: func(t *testing.T, p *Proxy) {
				roundTrip(t, dial(t, p.Addr()), "new")
			},
			heal:     func(t *testing.T, p *Proxy) {},
			afterOld: func(t *testing.T, c net.Conn) { roundTrip(t, c, "and here") },
		},
		{
			name: "reset",
			fault: func(t *testing.T, p *Proxy) {
				if n := p.Reset(); n != 1 {
					t.Fatalf("Reset closed %d connections, want 1", n)
				}
			},
			old: func(t *testing.T, c net.Conn) {
				broken(t, c, "reset connection")
				_, err := c.Write([]byte("x\n"))
				if err == nil {
					// The first write after a reset may still be buffered.
					_, err = c.Write([]byte("x\n"))
				}
				if err == nil || !(errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)) {
					t.Fatalf("write to a reset connection: %v, want EPIPE or ECONNRESET", err)
				}
			},
			during: func(t *testing.T, p *Proxy) {
				roundTrip(t, dial(t, p.Addr()), "after reset")
			},
			heal: func(t *testing.T, p *Proxy) {},
		},
		{
			name: "freeze",
			fault: func(t *testing.T, p *Proxy) {
				if n := p.Freeze(); n != 1 {
					t.Fatalf("Freeze held %d connections, want 1", n)
				}
			},
			old: func(t *testing.T, c net.Conn) {
				if _, err := io.WriteString(c, "held\n"); err != nil {
					t.Fatalf("write to a frozen connection: %v", err)
				}
				silent(t, c, "frozen connection")
			},
			during: func(t *testing.T, p *Proxy) {
				roundTrip(t, dial(t, p.Addr()), "new while frozen")
			},
			heal: func(t *testing.T, p *Proxy) {
				if n := p.Thaw(); n != 1 {
					t.Fatalf("Thaw released %d connections, want 1", n)
				}
			},
			afterOld: func(t *testing.T, c net.Conn) {
				_ = c.SetReadDeadline(time.Now().Add(patience))
				r := bufio.NewReader(c)
				if got, err := r.ReadString('\n'); err != nil || got != "held\n" {
					t.Fatalf("after Thaw the held line came back as %q, %v", got, err)
				}
				if _, err := io.WriteString(c, "thawed\n"); err != nil {
					t.Fatal(err)
				}
				if got, err := r.ReadString('\n'); err != nil || got != "thawed\n" {
					t.Fatalf("echo after Thaw = %q, %v", got, err)
				}
			},
		},
		{
			name: "blackhole",
			fault: func(t *testing.T, p *Proxy) {
				p.Blackhole(true)
			},
			old: func(t *testing.T, c net.Conn) { roundTrip(t, c, "old connections are not affected") },
			during: func(t *testing.T, p *Proxy) {
				c := dial(t, p.Addr())
				if _, err := io.WriteString(c, "into the void\n"); err != nil {
					t.Fatalf("write to a black-holed connection: %v", err)
				}
				silent(t, c, "black-holed connection")
				p.Blackhole(false)
				silent(t, c, "black-holed connection after Blackhole(false)")
				p.Reset() // the only way out for it (and for old)
				broken(t, c, "black-holed connection after Reset")
				roundTrip(t, dial(t, p.Addr()), "after the black hole")
			},
			heal: func(t *testing.T, p *Proxy) {},
		},
		{
			name: "refuse",
			fault: func(t *testing.T, p *Proxy) {
				if err := p.Refuse(true); err != nil {
					t.Fatalf("Refuse(true): %v", err)
				}
			},
			old: func(t *testing.T, c net.Conn) { roundTrip(t, c, "old connections are not affected") },
			during: func(t *testing.T, p *Proxy) {
				_, err := net.DialTimeout("tcp", p.Addr(), patience)
				if !errors.Is(err, syscall.ECONNREFUSED) {
					t.Fatalf("dial while refusing: %v, want ECONNREFUSED", err)
				}
			},
			heal: func(t *testing.T, p *Proxy) {
				if err := p.Refuse(false); err != nil {
					t.Fatalf("Refuse(false): %v", err)
				}
				roundTrip(t, dial(t, p.Addr()), "listening again")
			},
			afterOld: func(t *testing.T, c net.Conn) { roundTrip(t, c, "still fine") },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newProxy(t, echoServer(t))
			old := dial(t, p.Addr())
			roundTrip(t, old, "hello")
			tt.fault(t, p)
			tt.old(t, old)
			tt.during(t, p)
			tt.heal(t, p)
			if tt.afterOld != nil {
				tt.afterOld(t, old)
			}
		})
	}
}

// TestFreezeHoldsEOF: a client that closes its side while frozen is not
// seen closing by the target until Thaw.
func TestFreezeHoldsEOF(t *testing.T) {
	p := newProxy(t, echoServer(t))
	c := dial(t, p.Addr())
	roundTrip(t, c, "hello")
	p.Freeze()
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// The echo server half-closes when it sees EOF; the client would see
	// that as EOF. While frozen it must see nothing.
	silent(t, c, "frozen connection after the client's half-close")
	p.Thaw()
	_ = c.SetReadDeadline(time.Now().Add(patience))
	if n, err := c.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("after Thaw: read %d, %v; want EOF passed on both ways", n, err)
	}
}

// TestStats counts accepted connections and bytes each way, and nothing
// carried while frozen.
func TestStats(t *testing.T) {
	p := newProxy(t, echoServer(t))
	a, b := dial(t, p.Addr()), dial(t, p.Addr())
	roundTrip(t, a, "12345")  // 6 bytes each way
	roundTrip(t, b, "123456") // 7 bytes each way
	// The proxy counts a write once it returns, which may be after the
	// client read it: wait for the counters.
	deadline := time.Now().Add(patience)
	s := p.Stats()
	for (s.Accepted != 2 || s.Active != 2 || s.BytesToTarget != 13 || s.BytesToClient != 13) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		s = p.Stats()
	}
	if s.Accepted != 2 || s.Active != 2 || s.BytesToTarget != 13 || s.BytesToClient != 13 {
		t.Fatalf("stats %+v, want 2 accepted and active, 13 bytes each way", s)
	}
	p.Freeze()
	if _, err := io.WriteString(a, "frozen\n"); err != nil {
		t.Fatal(err)
	}
	silent(t, a, "frozen")
	if s := p.Stats(); s.BytesToTarget != 13 || s.BytesToClient != 13 {
		t.Fatalf("stats while frozen %+v, want nothing more carried", s)
	}
	if n := p.Reset(); n != 2 {
		t.Fatalf("Reset closed %d, want 2", n)
	}
	if s := p.Stats(); s.Active != 0 || s.Resets != 2 {
		t.Fatalf("stats after Reset %+v, want 0 active and 2 resets", s)
	}
}

// TestTargetDown: with nothing listening at the target, a connection is
// accepted and then closed.
func TestTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close()
	p := newProxy(t, target)
	c, err := net.DialTimeout("tcp", p.Addr(), patience)
	switch {
	case err == nil:
		defer c.Close()
		broken(t, c, "connection to a dead target")
	case !errors.Is(err, syscall.ECONNRESET):
		// The reset may arrive before the dial has returned.
		t.Fatalf("dial: %v, want success or ECONNRESET", err)
	}
	if s := p.Stats(); s.Accepted != 1 {
		t.Fatalf("stats %+v, want 1 accepted", s)
	}
	eventually(t, func() bool { return p.Stats().Active == 0 }, "the connection is forgotten")
}

// TestCloseLeaksNothing: Close returns only when every goroutine of the
// proxy has, whatever state its connections were in; and the address is
// free again.
func TestCloseLeaksNothing(t *testing.T) {
	target := echoServer(t)
	before := runtime.NumGoroutine()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	plain := dial(t, p.Addr())
	roundTrip(t, plain, "plain")
	frozen := dial(t, p.Addr())
	roundTrip(t, frozen, "frozen")
	p.Freeze()
	if _, err := io.WriteString(frozen, "held\n"); err != nil {
		t.Fatal(err)
	}
	p.Blackhole(true)
	hole := dial(t, p.Addr())
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, c := range []net.Conn{plain, frozen, hole} {
		broken(t, c, "connection after Close")
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), patience); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after Close: %v, want ECONNREFUSED", err)
	}
	if err := p.Refuse(false); err == nil {
		t.Fatal("Refuse(false) after Close succeeded")
	}
	// The echo server's goroutines for the closed connections end too.
	eventually(t, func() bool { return runtime.NumGoroutine() <= before }, "goroutines back to %d (now %d)", before, runtime.NumGoroutine())
}

// TestManyConnections: concurrent connections are carried independently.
func TestManyConnections(t *testing.T) {
	p := newProxy(t, echoServer(t))
	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", p.Addr(), patience)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer c.Close()
			line := strings.Repeat(string(rune('a'+i)), 100_000) + "\n"
			go func() { _, _ = io.WriteString(c, line) }()
			_ = c.SetReadDeadline(time.Now().Add(patience))
			got, err := bufio.NewReaderSize(c, 1<<20).ReadString('\n')
			if err != nil || got != line {
				errs <- "connection " + string(rune('a'+i)) + ": echo differs"
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if s := p.Stats(); s.Accepted != 20 || s.BytesToTarget != 20*100_001 || s.BytesToClient != 20*100_001 {
		t.Fatalf("stats %+v", s)
	}
}

// eventually polls cond every 5ms until it holds, failing after patience.
func eventually(t *testing.T, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(patience)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: "+msg, append([]any{patience}, args...)...)
		}
		<-tick.C
	}
}
