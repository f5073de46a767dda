package portfwd

import (
	"errors"
	"io"
	"net"
	"sync"
)

// halfCloser is a connection whose write side closes on its own (TCP and
// unix stream sockets): the peer reads EOF and may still answer.
type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// splice copies both ways between a and b until both directions have ended,
// then closes both. The end of one direction (EOF) is passed on as a
// half-close, so a client that shuts down its sending side still gets the
// answer; an error in either direction (a reset) ends both at once, so a
// copy never waits for a peer that is gone.
func splice(a, b halfCloser) {
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			a.Close()
			b.Close()
		})
	}
	var wg sync.WaitGroup
	one := func(dst, src halfCloser) {
		defer wg.Done()
		_, err := io.Copy(dst, src)
		if err != nil && !errors.Is(err, net.ErrClosed) {
			closeBoth()
			return
		}
		if dst.CloseWrite() != nil {
			closeBoth()
		}
	}
	wg.Add(2)
	go one(a, b)
	go one(b, a)
	wg.Wait()
	closeBoth()
}
