package vm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// nsenterPath enters a machine's namespaces for each SSH connection (a
// multi-threaded Go process cannot setns into a user namespace itself).
var nsenterPath = "/usr/bin/nsenter"

// holdTimeout bounds how long a connection the security groups do not
// admit is held silent (clients give up long before: a dropped SYN).
const holdTimeout = 2 * time.Minute

// listenSSH opens the machine's SSH sockets in the host's network
// namespace, on the instance's addresses: every accepted connection is
// admitted (or not) by the security groups, then handed to the machine's
// own sshd in inetd mode.
func (mc *Machine) listenSSH() error {
	rs := mc.run
	if rs == nil {
		return errors.New("machine not running")
	}
	for _, ip := range mc.spec.IPs {
		l, err := net.Listen("tcp4", net.JoinHostPort(ip, strconv.Itoa(mc.spec.Port)))
		if err != nil {
			return fmt.Errorf("listen for SSH: %w", err)
		}
		rs.mu.Lock()
		if rs.closed {
			rs.mu.Unlock()
			l.Close()
			return errors.New("machine stopped")
		}
		rs.listeners = append(rs.listeners, l)
		rs.wg.Add(1)
		rs.mu.Unlock()
		pid := mc.proc.Process.Pid
		go func() {
			defer rs.wg.Done()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				if !rs.track(c) {
					c.Close()
					return
				}
				rs.wg.Add(1)
				go func() {
					defer rs.wg.Done()
					defer rs.untrack(c)
					mc.serveConn(c, pid)
				}()
			}
		}()
	}
	return nil
}

func (mc *Machine) serveConn(c net.Conn, pid int) {
	defer c.Close()
	src, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	dst, _, _ := net.SplitHostPort(c.LocalAddr().String())
	if mc.spec.Admit != nil && !mc.spec.Admit(src, dst, mc.spec.Port) {
		mc.m.log.Debug("connection not admitted by the security groups", "instance", mc.spec.InstanceID, "from", src)
		// Nothing is read or written: the client sees what a dropped SYN
		// looks like, a connection attempt that never answers.
		_ = c.SetReadDeadline(time.Now().Add(holdTimeout))
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}
	tc := c.(*net.TCPConn)
	// With drops injected the connection goes through us, so that a drop
	// can freeze what sshd sends from the moment it is decided: the client
	// then never sees the command's exit status. Otherwise sshd gets the
	// socket itself.
	var frozen atomic.Bool
	var f *os.File
	var ours *os.File
	if mc.m.opts.DropProbability > 0 {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return
		}
		ours, f = os.NewFile(uintptr(fds[0]), "ssh-proxy"), os.NewFile(uintptr(fds[1]), "sshd-side")
		defer ours.Close()
		go func() {
			_, _ = io.Copy(ours, c)
			_ = unix.Shutdown(fds[0], unix.SHUT_WR)
		}()
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := ours.Read(buf)
				if n > 0 && !frozen.Load() {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					_ = tc.CloseWrite()
					return
				}
			}
		}()
	} else {
		var err error
		if f, err = tc.File(); err != nil {
			return
		}
	}
	cmd := exec.Command(nsenterPath, "--target", strconv.Itoa(pid),
		"--user", "--mount", "--pid", "--net", "--uts", "--ipc", "--root", "--wd",
		"--", "/usr/sbin/sshd", "-i", "-e", "-o", "LogLevel=VERBOSE")
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	cmd.Stdin, cmd.Stdout = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		f.Close()
		return
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		mc.m.log.Debug("start sshd -i", "instance", mc.spec.InstanceID, "err", err)
		return
	}
	f.Close()
	drop := func(d time.Duration) {
		frozen.Store(true)
		time.AfterFunc(d, func() {
			// Cut the TCP connection itself: the client loses it before
			// the command's exit status, as on a network failure.
			if rc, err := tc.SyscallConn(); err == nil {
				_ = rc.Control(func(fd uintptr) { _ = unix.Shutdown(int(fd), unix.SHUT_RDWR) })
			}
		})
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		mc.m.log.Debug("sshd", "instance", mc.spec.InstanceID, "line", line)
		switch {
		case strings.HasPrefix(line, "Starting session: subsystem 'sftp'"):
			if d := mc.decideDrop(30); d > 0 {
				mc.m.log.Debug("dropping sftp session", "instance", mc.spec.InstanceID, "after", d)
				drop(d)
			}
		case strings.HasPrefix(line, "Starting session: command"):
			if d := mc.decideDrop(150); d > 0 {
				mc.m.log.Debug("dropping session", "instance", mc.spec.InstanceID, "after", d)
				drop(d)
			}
		}
	}
	_ = cmd.Wait()
}

// serveMirror serves the offline apt mirror on 127.0.0.1:80 inside the
// machine's network namespace, the only thing the machine can reach: the
// listening socket is created there (setns on a locked thread), served by
// the simulator. The machine's /etc/hosts names deb.debian.org 127.0.0.1.
func (mc *Machine) serveMirror(rs *runState, pid int) error {
	l, err := listenInNetns(pid, "127.0.0.1:80")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(mc.m.mirror)), ReadHeaderTimeout: 30 * time.Second}
	rs.mu.Lock()
	rs.mirror = srv
	rs.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
	return nil
}

// listenInNetns creates a listening socket in the network namespace of
// pid (bringing its loopback up first). The thread goes back to our
// namespace; if it cannot, it stays locked and dies with the goroutine.
func listenInNetns(pid int, addr string) (net.Listener, error) {
	type result struct {
		l   net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- result{err: err}
			runtime.UnlockOSThread()
			return
		}
		defer own.Close()
		target, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			ch <- result{err: err}
			runtime.UnlockOSThread()
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("enter the machine's network namespace: %w", err)}
			runtime.UnlockOSThread()
			return
		}
		var l net.Listener
		err = loopbackUp()
		if err == nil {
			l, err = net.Listen("tcp4", addr)
		}
		if serr := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); serr != nil {
			// Tainted thread: keep it locked, the runtime discards it.
			if l != nil {
				l.Close()
			}
			ch <- result{err: fmt.Errorf("return to the host's network namespace: %w", serr)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{l, err}
	}()
	r := <-ch
	return r.l, r.err
}

// loopbackUp is `ip link set lo up` in the current thread's namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring the machine's loopback up: %w", err)
	}
	return nil
}
