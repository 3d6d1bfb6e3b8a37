// Command warden-executor is the sandbox container's main process (PID 1): it runs the commands
// the worker sends it, each as its own uid, so that a command's round trip costs a message over
// the container's attach stream instead of a `docker exec`.
//
// Protocol. The worker attaches to the container (no network, no mount) and writes requests to
// the executor's stdin; the executor writes responses to its stdout. Each frame is one JSON object
// on one line (byte strings are base64, as encoding/json does []byte). Lines rather than a length
// prefix: a worker that dies halfway through writing a frame leaves a partial line in the stream,
// and the next worker to attach starts with a newline, which ends that line as a frame that fails
// to parse and is dropped; after a length prefix the reader would wait for bytes that never come
// and swallow the next worker's frames. Requests and responses carry an id, so several requests
// are in flight at once:
//
//	{"type":"run","id":..,"argv":[..],"env":[..],"stdin":"<base64>","cwd":..,"uid":..,"gid":..,"timeout_ms":..,"max_output_bytes":..,"keep_id":..}
//	{"type":"result","id":..}  the result of a run: kept, or waited for while it runs
//	{"type":"cancel","id":..}  ends a run now (SIGKILL to its group, then the sweep of its uid) and
//	                           answers its result, as `result` does
//	{"type":"forget","id":..}  the worker has the result: drops its output, keeps the id; answered
//	                           {"type":"forgotten","id":..} (also for an id never seen)
//	{"type":"ping","id":..}    answered {"type":"pong","id":..}
//
// A keep_id run of an action ("action:<action id>") that an earlier worker started under the shell
// execution journal (before actions ran natively; its marker file is in the sandbox's /tmp) is
// answered {"type":"journaled","id":..} and never started: the worker collects it the journal's way.
//
// A run is answered {"type":"result","id":..,"exit_code":..,"signal":..,"timed_out":..,"stdout":..,
// "stderr":..,"stdout_dropped":..,"stderr_dropped":..,"outlived":..,"duration_ms":..}; a result
// asked for an id never seen is {"type":"unknown","id":..}; a run, result or cancel of an id
// forgotten (or whose result was evicted) is {"type":"collected","id":..}; a request refused is
// {"type":"error","id":..,"error":..}. A run whose id is already known is never started again: it
// is answered with the first run's result (exactly once, for a worker retrying after it lost its
// connection or its life), or, once that result is gone, with "collected" (never by running it).
// Every response goes to every attached client; each keeps the ids it asked for.
//
// Memory. Results live in PID 1, whose memory counts against the sandbox's memory_mb, so they are
// kept only until the worker forgets them (at once, normally) and at most ten minutes after the
// run ends; and the output of all the results kept is capped at maxKeptBytes: past it, the oldest
// results lose their output first (a worker that lost one is told "collected", and fails rather
// than running the command again). An id outlives its output by a tombstone (the id and when it
// ended, a few dozen bytes) for as long again, so a late retry still finds it known. A run sent
// with keep_id (an action's, keyed by the action id) keeps its id for the sandbox's whole life
// instead: the worker does not forget its result, which is kept the ten minutes (a new activity
// for the same action gets it), and after that the bare id refuses every later run of it, as the
// execution journal's marker files did.
//
// Privileges. The executor runs as root in the container with only CAP_SETUID, CAP_SETGID and
// CAP_KILL (the engine drops the rest; no-new-privileges stays on, so no file can give any back).
// It needs them to start each command as its uid and gid (setgroups to none, setgid, setuid: the
// kernel then clears every capability of the child) and to kill what a command leaves behind.
// That is safe because a command, running as a non-zero uid with no capability:
//   - cannot signal the executor (kill needs the same uid or CAP_KILL) nor ptrace it (ptrace and
//     the /proc/1 files guarded by the ptrace access check, fd/, environ, mem, root, need the same
//     uid or CAP_SYS_PTRACE). gVisor guards /proc/1/environ and the listing of /proc/1/fd by file
//     mode alone, so there any uid reads the executor's environment (the engine's PATH, HOSTNAME
//     and HOME: nothing secret is ever put there) and sees its descriptors' names; opening them,
//     mem and root stay refused;
//   - cannot write requests or forge responses: the executor's stdin and stdout are pipes the
//     container runtime holds, reachable only through /proc/1/fd, which it cannot open; every other
//     descriptor of the executor is close-on-exec, so a command gets only its own three pipes;
//   - cannot become root again: uid 0 and gid 0 are refused as a command's identity.
//
// The test (test/integration/executor.test.ts) checks the first two under runc and gVisor.
//
// PID 1 duties. The kernel delivers to PID 1 only the signals it handles: SIGTERM (and SIGINT)
// kill every process in the container and exit 0. Orphans are reparented to PID 1, so one loop
// reaps every child (wait4 on -1) and hands the status of a command's own process to its run;
// nothing else waits, so no status is stolen.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A frame larger than this is dropped unread (a 1 MiB file written through argv, base64 and
// JSON-escaped, fits well within it).
const maxFrameBytes = 64 << 20

// Results are kept this long after their run ends, and the ids of runs twice as long.
const resultTTL = 10 * time.Minute

// journalDir is where the shell execution journal keeps its markers (JOURNAL_DIR in domain/journal.ts).
const journalDir = "/tmp/.warden-actions"

// The output (stdout and stderr) of all the results kept, at most. Go's heap grows to about twice
// what is live, and a result being sent is held again as JSON: 16 MiB kept costs PID 1 some 48 MiB
// at worst, which a sandbox of 128 MiB still affords (under gVisor, running out ends the sandbox).
const maxKeptBytes = 16 << 20

type request struct {
	Type           string   `json:"type"`
	ID             string   `json:"id"`
	Argv           []string `json:"argv"`
	Env            []string `json:"env"`
	Stdin          []byte   `json:"stdin"`
	Cwd            string   `json:"cwd"`
	UID            int      `json:"uid"`
	GID            int      `json:"gid"`
	TimeoutMs      int64    `json:"timeout_ms"`
	MaxOutputBytes int      `json:"max_output_bytes"`
	KeepID         bool     `json:"keep_id"`
}

type result struct {
	Type          string `json:"type"`
	ID            string `json:"id"`
	ExitCode      int    `json:"exit_code"`
	Signal        int    `json:"signal"`
	TimedOut      bool   `json:"timed_out"`
	Stdout        []byte `json:"stdout"`
	Stderr        []byte `json:"stderr"`
	StdoutDropped int64  `json:"stdout_dropped"`
	StderrDropped int64  `json:"stderr_dropped"`
	Outlived      bool   `json:"outlived"`
	DurationMs    int64  `json:"duration_ms"`
}

type reply struct {
	Type  string `json:"type"`
	ID    string `json:"id"`
	Error string `json:"error,omitempty"`
}

// out serialises frames onto stdout.
type out struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (o *out) send(v any) {
	line, err := json.Marshal(v)
	if err != nil {
		logf("cannot encode a response: %v", err)
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.w.Write(line)
	o.w.WriteByte('\n')
	if err := o.w.Flush(); err != nil {
		logf("cannot write a response: %v", err)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "warden-executor: "+format+"\n", args...)
}

// journalEntry is one run, known by its id: done is closed once res is set; cancel is closed
// (once) when the run is to end now. An entry whose res is nil after done is a tombstone: its
// result was collected (forgotten) or evicted.
type journalEntry struct {
	id         string
	done       chan struct{}
	cancel     chan struct{}
	cancelOnce sync.Once
	res        *result
	ended      time.Time
	keepID     bool
}

type journal struct {
	mu      sync.Mutex
	entries map[string]*journalEntry
	// The ids of keep_id runs whose results expired: only the id is left (a few dozen bytes each).
	spent map[string]struct{}
	// The ids of results still kept, oldest first, and the bytes of their output.
	kept      []string
	keptBytes int
}

func outputBytes(res *result) int { return len(res.Stdout) + len(res.Stderr) }

// claim returns the entry for id and whether this caller created it (and so must run it).
func (j *journal) claim(id string, keepID bool) (*journalEntry, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e := j.known(id); e != nil {
		return e, false
	}
	e := &journalEntry{id: id, done: make(chan struct{}), cancel: make(chan struct{}), keepID: keepID}
	j.entries[id] = e
	return e, true
}

func (j *journal) lookup(id string) *journalEntry {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.known(id)
}

// known is the entry of id, a spent id as an ended entry without result, or nil; the caller holds j.mu.
func (j *journal) known(id string) *journalEntry {
	if e, ok := j.entries[id]; ok {
		return e
	}
	if _, ok := j.spent[id]; ok {
		e := &journalEntry{id: id, done: make(chan struct{}), cancel: make(chan struct{})}
		close(e.done)
		return e
	}
	return nil
}

// finish keeps res for its waiters, first evicting the oldest results' output while all of it
// would be over maxKeptBytes. res itself is kept whatever its size (max_output_bytes bounds it):
// the run's own waiters are answered from it.
func (j *journal) finish(e *journalEntry, res *result) {
	j.mu.Lock()
	for len(j.kept) > 0 && j.keptBytes+outputBytes(res) > maxKeptBytes {
		j.drop(j.kept[0])
	}
	e.res, e.ended = res, time.Now()
	j.kept = append(j.kept, res.ID)
	j.keptBytes += outputBytes(res)
	j.mu.Unlock()
	close(e.done)
}

// drop turns the entry of id into a tombstone; the caller holds j.mu.
func (j *journal) drop(id string) {
	e := j.entries[id]
	if e == nil || e.res == nil {
		return
	}
	j.keptBytes -= outputBytes(e.res)
	e.res = nil
	for i, k := range j.kept {
		if k == id {
			j.kept = append(j.kept[:i], j.kept[i+1:]...)
			break
		}
	}
}

// forget drops the result of id once its run has ended; a run still going keeps its result for
// its waiters (the worker forgets only results it holds, so that does not happen in practice).
func (j *journal) forget(id string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e := j.entries[id]; e != nil && !e.ended.IsZero() {
		j.drop(id)
	}
}

// answer is what a request for the run of e gets once it has ended: its result, or "collected".
func (j *journal) answer(e *journalEntry) any {
	<-e.done
	j.mu.Lock()
	defer j.mu.Unlock()
	if e.res == nil {
		return reply{Type: "collected", ID: e.id}
	}
	return e.res
}

func (j *journal) expire(now time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for id, e := range j.entries {
		if e.ended.IsZero() {
			continue
		}
		if e.keepID && now.Sub(e.ended) > resultTTL {
			j.drop(id)
			delete(j.entries, id)
			j.spent[id] = struct{}{}
		} else if now.Sub(e.ended) > 2*resultTTL {
			j.drop(id)
			delete(j.entries, id)
		} else if now.Sub(e.ended) > resultTTL {
			j.drop(id)
		}
	}
}

func main() {
	// What a command makes stays usable by later commands (other uids, same group).
	syscall.Umask(0o007)

	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	// Handled rather than ignored (an ignored signal stays ignored in the children): a write to a
	// stdout nobody reads fails instead of ending the executor.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	startReaper()

	o := &out{w: bufio.NewWriterSize(os.Stdout, 64<<10)}
	j := &journal{entries: map[string]*journalEntry{}, spent: map[string]struct{}{}}
	go func() {
		for now := range time.Tick(time.Minute) {
			j.expire(now)
		}
	}()
	go readRequests(o, j)

	<-signals
	// Everything but PID 1 itself: kill(-1) skips the caller.
	syscall.Kill(-1, syscall.SIGKILL)
	os.Exit(0)
}

// readRequests serves stdin until it ends; the executor lives on (a worker re-attaches later).
func readRequests(o *out, j *journal) {
	in := bufio.NewReaderSize(os.Stdin, 64<<10)
	for {
		line, tooLong, err := readLine(in)
		if err != nil {
			logf("stdin ended (%v); waiting for a signal", err)
			return
		}
		if tooLong {
			logf("dropped a frame over %d bytes", maxFrameBytes)
			continue
		}
		if len(line) == 0 {
			continue
		}
		var req request
		if err := json.Unmarshal(line, &req); err != nil {
			logf("dropped a frame that is not JSON (%d bytes): %v", len(line), err)
			continue
		}
		go serve(o, j, &req)
	}
}

// readLine reads one line without its newline; a line over maxFrameBytes is skipped whole.
func readLine(in *bufio.Reader) (line []byte, tooLong bool, err error) {
	for {
		part, err := in.ReadSlice('\n')
		if !tooLong {
			line = append(line, part...)
			if len(line) > maxFrameBytes {
				line, tooLong = nil, true
			}
		}
		switch err {
		case nil:
			if len(line) > 0 {
				line = line[:len(line)-1]
			}
			return line, tooLong, nil
		case bufio.ErrBufferFull:
			continue
		default:
			return nil, false, err
		}
	}
}

func serve(o *out, j *journal, req *request) {
	if req.ID == "" {
		o.send(reply{Type: "error", Error: "a request needs an id"})
		return
	}
	switch req.Type {
	case "ping":
		o.send(reply{Type: "pong", ID: req.ID})
	case "result", "cancel":
		e := j.lookup(req.ID)
		if e == nil {
			o.send(reply{Type: "unknown", ID: req.ID})
			return
		}
		if req.Type == "cancel" {
			e.cancelOnce.Do(func() { close(e.cancel) })
		}
		o.send(j.answer(e))
	case "forget":
		j.forget(req.ID)
		o.send(reply{Type: "forgotten", ID: req.ID})
	case "run":
		if msg := invalid(req); msg != "" {
			o.send(reply{Type: "error", ID: req.ID, Error: msg})
			return
		}
		if req.KeepID && journaledByShell(req.ID) {
			o.send(reply{Type: "journaled", ID: req.ID})
			return
		}
		e, first := j.claim(req.ID, req.KeepID)
		if first {
			// Sent as it is, not looked up: a burst of other results cannot evict it first.
			res := run(req, e.cancel)
			j.finish(e, res)
			o.send(res)
			return
		}
		o.send(j.answer(e))
	default:
		o.send(reply{Type: "error", ID: req.ID, Error: fmt.Sprintf("unknown request type %q", req.Type)})
	}
}

// journaledByShell tells whether an earlier worker ran this action under the shell execution
// journal: its marker exists (a rolling upgrade may retry such an action on a newer worker).
func journaledByShell(id string) bool {
	action, ok := strings.CutPrefix(id, "action:")
	if !ok || action == "" || strings.ContainsAny(action, "/\x00") || strings.HasPrefix(action, ".") {
		return false
	}
	_, err := os.Lstat(journalDir + "/" + action + ".started")
	return err == nil
}

func invalid(req *request) string {
	switch {
	case len(req.Argv) == 0:
		return "argv is empty"
	case req.UID <= 0 || req.GID <= 0:
		return "uid and gid must be above 0: commands never run as root"
	case req.TimeoutMs <= 0:
		return "timeout_ms must be above 0"
	case req.MaxOutputBytes < 0:
		return "max_output_bytes must not be negative"
	}
	return ""
}
