package main

import (
	"net/http/httptest"
	"testing"
)

// What the seed pipeline's auto-test step runs before the image is pushed.
func TestHelloGreets(t *testing.T) {
	rec := httptest.NewRecorder()
	hello(rec, httptest.NewRequest("GET", "/", nil))
	if got := rec.Body.String(); rec.Code != 200 || got != "hello, world\n" {
		t.Errorf("GET / answered %d %q, want 200 %q", rec.Code, got, "hello, world\n")
	}
}
