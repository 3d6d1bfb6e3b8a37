package main

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// ended claims id, finishes it with some output and returns the journal's answer to a later run.
func ended(j *journal, id string, keepID bool, at time.Time) *journalEntry {
	e, first := j.claim(id, keepID)
	if !first {
		panic("claimed twice: " + id)
	}
	j.finish(e, &result{Type: "result", ID: id, Stdout: []byte("out")})
	e.ended = at
	return e
}

func answerType(j *journal, id string) string {
	switch a := j.answer(j.lookup(id)).(type) {
	case *result:
		return "result"
	case reply:
		return a.Type
	default:
		return "?"
	}
}

func TestAnActionsIDIsKeptForTheSandboxsLife(t *testing.T) {
	j := &journal{entries: map[string]*journalEntry{}, spent: map[string]struct{}{}}
	start := time.Now()
	ended(j, "action:a", true, start)
	ended(j, "activity", false, start)

	// Within the ten minutes, a forget does not drop an action's result: the worker never sends it
	// for one, and a new activity for the action gets the result.
	j.expire(start.Add(resultTTL - time.Second))
	if got := answerType(j, "action:a"); got != "result" {
		t.Fatalf("an action's result within its TTL: got %s", got)
	}

	// Past the TTL both lose their output; an activity's id goes after twice as long, an action's never.
	j.expire(start.Add(resultTTL + time.Second))
	if got := answerType(j, "action:a"); got != "collected" {
		t.Fatalf("an action's result past its TTL: got %s", got)
	}
	j.expire(start.Add(100 * resultTTL))
	if _, known := j.entries["activity"]; known {
		t.Fatal("an activity's id outlived twice its TTL")
	}
	if _, first := j.claim("action:a", true); first {
		t.Fatal("an action's spent id was run again")
	}
	if got := answerType(j, "action:a"); got != "collected" {
		t.Fatalf("an action's spent id: got %s", got)
	}
	if _, present := j.entries["action:a"]; present {
		t.Fatal("a spent id still holds a whole entry")
	}
}

func TestJournaledByShell(t *testing.T) {
	if err := os.MkdirAll(journalDir, 0o755); err != nil {
		t.Skipf("cannot make %s here: %v", journalDir, err)
	}
	action := fmt.Sprintf("act-test-%d", time.Now().UnixNano())
	marker := journalDir + "/" + action + ".started"
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(marker)
	for id, want := range map[string]bool{
		"action:" + action:              true,
		"action:act-never-journaled":    false,
		action:                          false, // not an action's run
		"action:../" + action:           false,
		"action:.warden-actions/x":      false,
		"action:" + action + "\x00.txt": false,
	} {
		if got := journaledByShell(id); got != want {
			t.Errorf("journaledByShell(%q) = %v, want %v", id, got, want)
		}
	}
}
