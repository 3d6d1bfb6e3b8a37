package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// After SIGTERM on timeout, a command's process group has this long before SIGKILL.
	killGrace = 2 * time.Second
	// How long the uid sweep keeps killing (a fork bomb forks while it is being killed) before the
	// run is reported as outlived.
	sweepFor = 5 * time.Second
	// After the sweep, how long output still in the pipes may take to be read.
	drainFor = time.Second
	// Where a bare argv[0] is looked up when the request's env has no PATH.
	defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// The reaper and start share procMu: a pid is registered in exited before the reaper can see it
// end, so each command's status reaches its run and nothing else's does.
var (
	procMu sync.Mutex
	exited = map[int]chan syscall.WaitStatus{}
)

// startReaper reaps every child of PID 1 from now on: commands (status handed to their run) and
// the orphans the kernel reparents to it (status discarded).
func startReaper() {
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, syscall.SIGCHLD)
	go func() {
		// The tick is a backstop; SIGCHLD does the work.
		tick := time.NewTicker(time.Second)
		for {
			select {
			case <-sigchld:
			case <-tick.C:
			}
			reap()
		}
	}()
}

func reap() {
	procMu.Lock()
	defer procMu.Unlock()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		if ch, ok := exited[pid]; ok {
			delete(exited, pid)
			ch <- ws
		}
	}
}

// start forks and execs the command as its uid and gid (no supplementary groups, so no
// capability left) as the leader of its own process group.
func start(path string, req *request, files []uintptr) (int, chan syscall.WaitStatus, error) {
	procMu.Lock()
	defer procMu.Unlock()
	pid, err := syscall.ForkExec(path, req.Argv, &syscall.ProcAttr{
		Dir:   req.Cwd,
		Env:   req.Env,
		Files: files,
		Sys: &syscall.SysProcAttr{
			Setpgid:    true,
			Credential: &syscall.Credential{Uid: uint32(req.UID), Gid: uint32(req.GID), Groups: []uint32{}},
		},
	})
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	exited[pid] = ch
	return pid, ch, nil
}

// capture keeps the first limit bytes read and counts the rest.
type capture struct {
	kept    []byte
	limit   int
	dropped int64
	done    chan struct{}
}

func newCapture(limit int) *capture {
	return &capture{limit: limit, done: make(chan struct{})}
}

func (c *capture) drain(r *os.File) {
	defer close(c.done)
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		room := max(c.limit-len(c.kept), 0)
		c.kept = append(c.kept, buf[:min(n, room)]...)
		c.dropped += int64(n - min(n, room))
		if err != nil {
			return
		}
	}
}

// run runs one command to its end (or until cancel is closed) and kills whatever of its uid is left.
func run(req *request, cancel <-chan struct{}) *result {
	started := time.Now()
	res := &result{Type: "result", ID: req.ID}
	finish := func() *result {
		res.DurationMs = time.Since(started).Milliseconds()
		return res
	}
	cannotRun := func(err error) *result {
		res.ExitCode = 126
		if errors.Is(err, syscall.ENOENT) {
			res.ExitCode = 127
		}
		res.Stderr = fmt.Appendf(nil, "warden-executor: cannot run %s: %v\n", req.Argv[0], err)
		return finish()
	}
	path, err := lookPath(req.Argv[0], req.Env)
	if err != nil {
		return cannotRun(err)
	}

	inR, inW, err := os.Pipe()
	if err != nil {
		return cannotRun(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return cannotRun(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		for _, f := range []*os.File{inR, inW, outR, outW} {
			f.Close()
		}
		return cannotRun(err)
	}
	pid, exitedCh, err := start(path, req, []uintptr{inR.Fd(), outW.Fd(), errW.Fd()})
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return cannotRun(err)
	}

	go func() {
		// A command that does not read its stdin makes this fail: that is its choice.
		inW.Write(req.Stdin)
		inW.Close()
	}()
	stdout, stderr := newCapture(req.MaxOutputBytes), newCapture(req.MaxOutputBytes)
	go stdout.drain(outR)
	go stderr.drain(errR)

	var ws syscall.WaitStatus
	timeout := time.NewTimer(time.Duration(req.TimeoutMs) * time.Millisecond)
	select {
	case ws = <-exitedCh:
		timeout.Stop()
	case <-cancel:
		timeout.Stop()
		syscall.Kill(-pid, syscall.SIGKILL)
		ws = <-exitedCh
	case <-timeout.C:
		res.TimedOut = true
		syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case ws = <-exitedCh:
		case <-time.After(killGrace):
			syscall.Kill(-pid, syscall.SIGKILL)
			ws = <-exitedCh
		}
	}
	switch {
	case ws.Exited():
		res.ExitCode = ws.ExitStatus()
	case ws.Signaled():
		res.Signal = int(ws.Signal())
		res.ExitCode = 128 + res.Signal
	}

	// Whatever the command left running (in its group or not) goes now; once it is gone, the
	// pipes' write ends are closed and the output ends.
	res.Outlived = !sweep(req.UID)
	drained := time.After(drainFor)
	for _, c := range []*capture{stdout, stderr} {
		select {
		case <-c.done:
		case <-drained:
		}
	}
	outR.Close()
	errR.Close()
	<-stdout.done
	<-stderr.done
	res.Stdout, res.StdoutDropped = stdout.kept, stdout.dropped
	res.Stderr, res.StderrDropped = stderr.kept, stderr.dropped
	return finish()
}

// sweep kills every process of uid, again and again while any is left alive (a process can
// fork while it is being killed); false if some are still alive after sweepFor.
func sweep(uid int) bool {
	deadline := time.Now().Add(sweepFor)
	for {
		killAllOf(uid)
		alive := 0
		for _, p := range processesOf(uid) {
			// Zombies are killed too: a thread group whose leader has exited shows as one.
			syscall.Kill(p.pid, syscall.SIGKILL)
			if !p.zombie {
				alive++
			}
		}
		if alive == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// killAllOf sends SIGKILL to every process of uid in one call, which a fork bomb cannot outrun as
// it outruns killing its processes one by one: kill(-1) from a thread that holds that uid as its
// real and effective uid (the kernel then signals exactly the processes whose uid matches, the
// thread's effective capabilities being cleared). The credentials are the calling thread's own (a
// raw setresuid, not the runtime's all-threads Setuid), on the thread the goroutine already runs
// on: under runc a fork bomb may hold every slot of the pids cgroup, and a new thread would fail.
// Should the thread fail to become root again, it stays locked to this goroutine and ends with it.
func killAllOf(uid int) {
	runtime.LockOSThread()
	if _, _, errno := syscall.RawSyscall(syscall.SYS_SETRESUID, uintptr(uid), uintptr(uid), 0); errno != 0 {
		runtime.UnlockOSThread()
		return
	}
	syscall.RawSyscall(syscall.SYS_KILL, ^uintptr(0), uintptr(syscall.SIGKILL), 0)
	if _, _, errno := syscall.RawSyscall(syscall.SYS_SETRESUID, 0, 0, 0); errno == 0 {
		runtime.UnlockOSThread()
	}
}

type process struct {
	pid    int
	zombie bool
}

// processesOf walks /proc for the processes any of whose uids (real, effective, saved, fs) is uid.
func processesOf(uid int) []process {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		logf("cannot list /proc: %v", err)
		return nil
	}
	want := strconv.Itoa(uid)
	var found []process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 1 {
			continue
		}
		status, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue // gone already
		}
		var uids []string
		zombie := false
		for line := range bytes.Lines(status) {
			if rest, ok := bytes.CutPrefix(line, []byte("Uid:")); ok {
				uids = strings.Fields(string(rest))
			} else if rest, ok := bytes.CutPrefix(line, []byte("State:")); ok {
				zombie = bytes.HasPrefix(bytes.TrimSpace(rest), []byte("Z"))
			}
		}
		for _, u := range uids {
			if u == want {
				found = append(found, process{pid: pid, zombie: zombie})
				break
			}
		}
	}
	return found
}

// lookPath finds a bare command name in the request's PATH, as a shell would.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := defaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range strings.Split(path, ":") {
		if !strings.HasPrefix(dir, "/") {
			continue // relative to the executor's directory, not the command's: never meant
		}
		p := dir + "/" + name
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", syscall.ENOENT
}
