// core-spawner starts the supervisor's process groups for it, so that the supervisor's thread neither forks
// its large address space nor waits for each exec (issue 14). Started by src/process/Spawner.ts in its own
// session, it reads one JSON request per line on stdin and answers one JSON line per event on stdout:
//
//	{"id":N,"path":P,"args":[...],"dir":D,"env":["K=V",...]}  ->  {"id":N,"pid":PID} or {"id":N,"errno":E}
//	{"opened":N}                                              (the supervisor opened N's output: close ours)
//	                                                          <-  {"exit":PID,"code":C} or {"exit":PID,"signal":S}
//
// Each process is the leader of a new session, its stdin /dev/null, its stdout and stderr two FIFOs made in
// the folder given as the only argument (N.out, N.err), which the supervisor opens, unlinks and reads. The
// helper holds their write ends open until the supervisor says it has opened them, so that a process that
// writes at once never meets a FIFO without a reader. An exit is always written before the answer to a later
// spawn that reuses its pid. When stdin ends (the supervisor is gone, however it ended) every group still
// running is killed, the folder removed, and the helper exits.
package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

type request struct {
	ID     int      `json:"id"`
	Opened int      `json:"opened"`
	Path   string   `json:"path"`
	Args   []string `json:"args"`
	Dir    string   `json:"dir"`
	Env    []string `json:"env"`
}

var (
	// held while spawning and answering, and while reaping and reporting: a pid is reported exited before
	// it can be reported spawned again
	mu   sync.Mutex
	out  = bufio.NewWriterSize(os.Stdout, 64*1024)
	live = map[int]bool{}
)

func answer(line string) {
	out.WriteString(line)
	out.WriteByte('\n')
	out.Flush()
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
	pathList := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			pathList = kv[5:]
		}
	}
	denied := false
	for _, d := range filepath.SplitList(pathList) {
		if d == "" {
			d = "."
		}
		candidate := filepath.Join(d, file)
		resolved := candidate
		if !filepath.IsAbs(resolved) {
			resolved = filepath.Join(dir, resolved)
		}
		var st syscall.Stat_t
		if syscall.Stat(resolved, &st) != nil || st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			continue
		}
		if syscall.Access(resolved, 1) != nil {
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

func spawn(dir string, devnull int, r request, held map[int][2]int) {
	mu.Lock()
	defer mu.Unlock()
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
	var fds [2]int
	for i, stream := range []string{"out", "err"} {
		fifo := filepath.Join(dir, strconv.Itoa(r.ID)+"."+stream)
		syscall.Unlink(fifo)
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			fail(err.(syscall.Errno))
			return
		}
		// read and write: opening a FIFO so never waits for a reader
		fd, err := syscall.Open(fifo, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
		if err != nil {
			fail(err.(syscall.Errno))
			return
		}
		fds[i] = fd
	}
	pid, err := syscall.ForkExec(path, r.Args, &syscall.ProcAttr{
		Dir:   r.Dir,
		Env:   r.Env,
		Files: []uintptr{uintptr(devnull), uintptr(fds[0]), uintptr(fds[1])},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		syscall.Close(fds[0])
		syscall.Close(fds[1])
		for _, stream := range []string{"out", "err"} {
			syscall.Unlink(filepath.Join(dir, strconv.Itoa(r.ID)+"."+stream))
		}
		if errno, ok := err.(syscall.Errno); ok {
			fail(errno)
		} else {
			fail(syscall.EINVAL)
		}
		return
	}
	live[pid] = true
	held[r.ID] = fds
	answer(`{"id":` + strconv.Itoa(r.ID) + `,"pid":` + strconv.Itoa(pid) + `}`)
}

func main() {
	if len(os.Args) != 2 {
		os.Stderr.WriteString("usage: core-spawner FOLDER (started by core's supervisor)\n")
		os.Exit(2)
	}
	dir := os.Args[1]
	devnull, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		os.Stderr.WriteString("core-spawner: /dev/null: " + err.Error() + "\n")
		os.Exit(1)
	}
	children := make(chan os.Signal, 1)
	signal.Notify(children, syscall.SIGCHLD)
	go func() {
		for range children {
			reap()
		}
	}()
	held := map[int][2]int{}
	in := bufio.NewReaderSize(os.Stdin, 256*1024)
	for {
		line, err := in.ReadBytes('\n')
		if len(line) > 0 {
			var r request
			if json.Unmarshal(line, &r) == nil {
				if r.Opened != 0 {
					if fds, ok := held[r.Opened]; ok {
						syscall.Close(fds[0])
						syscall.Close(fds[1])
						delete(held, r.Opened)
					}
				} else {
					spawn(dir, devnull, r, held)
				}
			}
		}
		if err != nil {
			break
		}
	}
	// the supervisor is gone: nothing it started outlives it
	mu.Lock()
	for pid := range live {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
	mu.Unlock()
	os.RemoveAll(dir)
}
