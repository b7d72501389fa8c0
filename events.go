package convoy

import "time"

// Event is one step of a download, for scripts and interfaces: convoy get
// --json prints each as a line of JSON. Fields that do not apply to a type
// are left out.
type Event struct {
	// Type is "start", "progress", "checkpoint", "retry" or "restart"; the
	// command line adds "done" and "error".
	Type string    `json:"event"`
	Time time.Time `json:"time"`
	// URL (secrets redacted) and Output, on start and done.
	URL    string `json:"url,omitempty"`
	Output string `json:"output,omitempty"`
	// Size of the file (-1 unknown) and bytes on disk, on start, progress,
	// checkpoint and done. On a checkpoint Done counts the bytes made
	// durable.
	Size int64 `json:"size,omitempty"`
	Done int64 `json:"done,omitempty"`
	// Connections and Segments, on start.
	Connections int `json:"connections,omitempty"`
	Segments    int `json:"segments,omitempty"`
	// Elapsed is the time since the download began, in seconds.
	Elapsed float64 `json:"elapsed,omitempty"`
	// Rate is bytes per second received by this run, on progress and done.
	Rate float64 `json:"rate,omitempty"`
	// Wait is the pause before the next try, in seconds, on retry.
	Wait float64 `json:"wait,omitempty"`
	// Error says what went wrong, on retry, restart and error.
	Error string `json:"error,omitempty"`
	// Fetched, Retries, Cuts and Checksum, on done.
	Fetched  int64  `json:"fetched,omitempty"`
	Retries  int64  `json:"retries,omitempty"`
	Cuts     int    `json:"cuts,omitempty"`
	Checksum string `json:"checksum,omitempty"`
}

// emit hands e to Config.OnEvent, one event at a time.
func (d *download) emit(e Event) {
	if d.cfg.OnEvent == nil {
		return
	}
	e.Time = time.Now()
	if e.Elapsed == 0 {
		e.Elapsed = time.Since(d.start).Seconds()
	}
	d.eventMu.Lock()
	defer d.eventMu.Unlock()
	d.cfg.OnEvent(e)
}
