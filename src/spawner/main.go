// core-spawner starts the supervisor's process groups for it, so that the supervisor's thread neither forks
// its large address space nor waits for each exec (issue 14). Started by src/process/Spawner.ts in its own
// session, it reads requests on stdin, fields ended by NUL bytes (which no argument or variable can hold),
// and answers one JSON line per event on stdout:
//
//	B ENVC ENV...                                  (the base environment, first)
//	S N PATH DIR ARGC ARGV... SETC K=V... UNSETC K...  ->  {"id":N,"pid":PID,"out":FD,"err":FD,"start":T}
//	                                                       or {"id":N,"errno":E}
//	O N                                            (the supervisor opened N's output: close ours)
//	                                               <-  {"exit":PID,"code":C} or {"exit":PID,"signal":S}
//
// T is the process's start time (field 22 of /proc/PID/stat, clock ticks since boot; left out when it cannot
// be read), read here, where the pid cannot be reused before it is reaped, and not on the supervisor's thread.
// A process's environment is the base one with SET over it and UNSET taken out: the supervisor sends what
// differs, not ~100 variables per service (npm's among them) that are the same for all.
// No JSON decoder: its memory counts with the supervisor's.
//
// Each process is the leader of a new session, its stdin /dev/null, its stdout and stderr the write ends of two
// pipes whose read ends are this helper's descriptors FD; the supervisor opens them as /proc/HELPER/fd/FD and
// reads them directly. The helper holds its read ends until the supervisor says it has opened its own ("O"),
// so that a process that writes at once never meets a pipe without a reader, then closes them: the process
// gets EPIPE once the supervisor stops reading. Pipes, not FIFOs in a folder: a FIFO is an inode made on the
// stack's disk, and ext4 looks past the inodes freed in the last seconds for each new one (~0.24 ms of this
// helper's CPU per FIFO with the previous run's 400 just freed, measured). A file without a #! line runs with
// /bin/sh, as execvp does. An exit is always written before the answer to a later spawn that reuses its pid.
// When stdin ends, or an answer cannot be written (the supervisor is gone, however it ended), every group
// still running is killed, nothing more is started, and the helper exits.
package main

import (
	"bufio"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

type request struct {
	ID   int
	Path string
	Args []string
	Dir  string
	Env  []string
}

// reader of NUL-ended fields; ok is false at the end of the input or on a malformed request
type fields struct {
	in *bufio.Reader
	ok bool
}

func (f *fields) text() string {
	if !f.ok {
		return ""
	}
	s, err := f.in.ReadString(0)
	if err != nil {
		f.ok = false
		return ""
	}
	return s[:len(s)-1]
}

// counts above this are malformed input (E2BIG comes far sooner: the kernel's limit is ~2 MB of arguments)
const maxCount = 1 << 22

func (f *fields) number() int {
	n, err := strconv.Atoi(f.text())
	if err != nil || n < 0 || n > maxCount {
		f.ok = false
		return 0
	}
	return n
}

func (f *fields) list() []string {
	n := f.number()
	items := make([]string, 0, n)
	for i := 0; i < n && f.ok; i++ {
		items = append(items, f.text())
	}
	return items
}

var (
	// held while spawning and answering, and while reaping and reporting: a pid is reported exited before
	// it can be reported spawned again
	mu   sync.Mutex
	out  = bufio.NewWriterSize(os.Stdout, 4096)
	live = map[int]bool{}
	// the supervisor cannot be told any more (its end of stdout is closed): it is gone
	orphaned = false
)

func answer(line string) {
	if orphaned {
		return
	}
	out.WriteString(line)
	out.WriteByte('\n')
	if out.Flush() != nil {
		orphaned = true
	}
}

func reap() {
	mu.Lock()
	defer mu.Unlock()
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		delete(live, pid)
		if status.Signaled() {
			answer(`{"exit":` + strconv.Itoa(pid) + `,"signal":` + strconv.Itoa(int(status.Signal())) + `}`)
		} else {
			answer(`{"exit":` + strconv.Itoa(pid) + `,"code":` + strconv.Itoa(status.ExitStatus()) + `}`)
		}
	}
}

// lookPath finds a command without a slash on the process's own PATH, as execvp does in the child
func lookPath(file string, env []string, dir string) (string, syscall.Errno) {
	if strings.Contains(file, "/") {
		return file, 0
	}
	// libuv's default when the environment has none; the first PATH= counts
	pathList := "/usr/bin:/bin"
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			pathList = kv[5:]
			break
		}
	}
	denied := false
	folders := filepath.SplitList(pathList)
	if len(folders) == 0 {
		folders = []string{""} // an empty PATH is the current folder, as for execvp
	}
	for _, d := range folders {
		if d == "" {
			d = "."
		}
		candidate := filepath.Join(d, file)
		resolved := candidate
		if !filepath.IsAbs(resolved) {
			resolved = filepath.Join(dir, resolved)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(resolved, &st); err != nil {
			if err == syscall.EACCES {
				denied = true // a folder that cannot be searched: execvp remembers it
			}
			continue
		}
		// execve refuses a folder with EACCES, and execvp goes on looking
		if st.Mode&syscall.S_IFMT == syscall.S_IFDIR || syscall.Access(resolved, 1) != nil {
			denied = true
			continue
		}
		return candidate, 0
	}
	if denied {
		return "", syscall.EACCES
	}
	return "", syscall.ENOENT
}

// environment is base with set over it (K=V each) and the names in unset taken out
func environment(base, set, unset []string) []string {
	if len(set) == 0 && len(unset) == 0 {
		return base
	}
	changed := make(map[string]bool, len(set)+len(unset))
	for _, kv := range set {
		changed[name(kv)] = true
	}
	for _, k := range unset {
		changed[k] = true
	}
	env := make([]string, 0, len(base)+len(set))
	for _, kv := range base {
		if !changed[name(kv)] {
			env = append(env, kv)
		}
	}
	return append(env, set...)
}

func name(kv string) string {
	if i := strings.IndexByte(kv, '='); i >= 0 {
		return kv[:i]
	}
	return kv
}

func spawn(devnull int, r request, held map[int][2]int) {
	mu.Lock()
	defer mu.Unlock()
	if orphaned {
		return
	}
	fail := func(errno syscall.Errno) {
		answer(`{"id":` + strconv.Itoa(r.ID) + `,"errno":` + strconv.Itoa(int(errno)) + `}`)
	}
	path, errno := lookPath(r.Path, r.Env, r.Dir)
	if errno != 0 {
		// the working folder is checked first, as a chdir in the child would be
		var st syscall.Stat_t
		if err := syscall.Stat(r.Dir, &st); err != nil {
			fail(err.(syscall.Errno))
		} else if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			fail(syscall.ENOTDIR)
		} else {
			fail(errno)
		}
		return
	}
	var readers, writers [2]int
	for i := range readers {
		var fds [2]int
		if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC); err != nil {
			for j := 0; j < i; j++ {
				syscall.Close(readers[j])
				syscall.Close(writers[j])
			}
			fail(err.(syscall.Errno))
			return
		}
		readers[i], writers[i] = fds[0], fds[1]
	}
	attr := &syscall.ProcAttr{
		Dir:   r.Dir,
		Env:   r.Env,
		Files: []uintptr{uintptr(devnull), uintptr(writers[0]), uintptr(writers[1])},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	}
	pid, err := syscall.ForkExec(path, r.Args, attr)
	if err == syscall.ENOEXEC {
		// no #! line: a shell script, as execvp runs it
		args := []string{"/bin/sh", path}
		if len(r.Args) > 1 {
			args = append(args, r.Args[1:]...)
		}
		pid, err = syscall.ForkExec("/bin/sh", args, attr)
	}
	syscall.Close(writers[0])
	syscall.Close(writers[1])
	if err != nil {
		syscall.Close(readers[0])
		syscall.Close(readers[1])
		if errno, ok := err.(syscall.Errno); ok {
			fail(errno)
		} else {
			fail(syscall.EINVAL)
		}
		return
	}
	live[pid] = true
	held[r.ID] = readers
	start := startTime(pid)
	reply := `{"id":` + strconv.Itoa(r.ID) + `,"pid":` + strconv.Itoa(pid) + `,"out":` + strconv.Itoa(readers[0]) +
		`,"err":` + strconv.Itoa(readers[1])
	if start != "" {
		reply += `,"start":` + start
	}
	answer(reply + `}`)
}

// startTime is the process's start time from /proc/PID/stat (field 22), or "" when it cannot be read
func startTime(pid int) string {
	var buf [1024]byte
	fd, err := syscall.Open("/proc/"+strconv.Itoa(pid)+"/stat", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	n, err := syscall.Read(fd, buf[:])
	syscall.Close(fd)
	if err != nil || n <= 0 {
		return ""
	}
	// the command name (field 2) may hold spaces and parentheses: fields are counted from the last ')'
	line := string(buf[:n])
	close := strings.LastIndexByte(line, ')')
	if close < 0 {
		return ""
	}
	rest := strings.Fields(line[close+1:])
	// rest[0] is field 3; field 22 is rest[19]
	if len(rest) < 20 {
		return ""
	}
	if _, err := strconv.ParseUint(rest[19], 10, 63); err != nil {
		return ""
	}
	return rest[19]
}

func main() {
	// its memory counts with the supervisor's: one processor (its forks are one at a time anyway), small
	// buffers (Go's collector as it is: at 10 % its peak was ~0.2 MB higher, measured with 200 services)
	runtime.GOMAXPROCS(1)
	if os.Getenv("CORE_SPAWNER_HELPER") != "1" {
		os.Stderr.WriteString("core-spawner is started by core's supervisor (CORE_SPAWNER_HELPER is not set)\n")
		os.Exit(2)
	}
	devnull, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		os.Stderr.WriteString("core-spawner: /dev/null: " + err.Error() + "\n")
		os.Exit(1)
	}
	// a write to the supervisor once it is gone fails with EPIPE instead of killing the helper before it has
	// killed what it started (handled, not ignored: an ignored signal would stay ignored in the processes)
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	children := make(chan os.Signal, 1)
	signal.Notify(children, syscall.SIGCHLD)
	go func() {
		for range children {
			reap()
		}
	}()
	held := map[int][2]int{}
	var base []string
	in := &fields{in: bufio.NewReaderSize(os.Stdin, 32*1024), ok: true}
	for {
		switch in.text() {
		case "B":
			base = in.list()
		case "S":
			r := request{ID: in.number(), Path: in.text(), Dir: in.text()}
			r.Args = in.list()
			r.Env = environment(base, in.list(), in.list())
			if in.ok {
				spawn(devnull, r, held)
			}
		case "O":
			id := in.number()
			if fds, ok := held[id]; ok {
				syscall.Close(fds[0])
				syscall.Close(fds[1])
				delete(held, id)
			}
		default:
			in.ok = false
		}
		mu.Lock()
		gone := orphaned
		mu.Unlock()
		if !in.ok || gone {
			break
		}
	}
	// the supervisor is gone: nothing it started outlives it
	mu.Lock()
	for pid := range live {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
	mu.Unlock()
}
