package cluster

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
)

// AuditEvent is what the tests and the bench read of one line of the API
// server's audit log (audit.k8s.io/v1 Event; only the controller's requests
// are logged, see the audit policy in controlplane.go).
type AuditEvent struct {
	Stage      string `json:"stage"`
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	ObjectRef  *struct {
		APIGroup    string `json:"apiGroup"`
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	Annotations map[string]string `json:"annotations"`
}

// Resource is the request's resource[/subresource]; empty for a
// non-resource request (discovery, /version).
func (e AuditEvent) Resource() string {
	if e.ObjectRef == nil {
		return ""
	}
	if e.ObjectRef.Subresource != "" {
		return e.ObjectRef.Resource + "/" + e.ObjectRef.Subresource
	}
	return e.ObjectRef.Resource
}

// ReadAudit hands each event of the audit log at path, from offset on, to
// each; a line it cannot decode is skipped.
func ReadAudit(path string, offset int64, each func(AuditEvent)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return err
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev AuditEvent
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			each(ev)
		}
	}
	return sc.Err()
}
