// Command checker checks a recorded history of reads and writes for linearizability
// against a key-value model partitioned by key (Porcupine), and prints a JSON verdict.
//
// Usage: checker [-timeout 60s] history.json
//
// The history is a JSON list of operations:
//
//	{"client": 0, "kind": "write", "key": "r/0", "value": "7", "call": 100, "return": 250}
//	{"client": 1, "kind": "read", "key": "r/0", "value": null, "call": 120, "return": null}
//
// Times are nanoseconds from one monotonic clock. A read's value is what it returned
// (null or "" for an absent key: a never-written key reads as ""). A return of null is
// an outcome not known (a write that timed out: it may or may not have taken effect);
// Porcupine is given the largest time for it, so it may be placed anywhere after its
// call, including after everything else, where it changes nothing observed. A write
// known not to have happened, and a read that failed, belong out of the history.
//
// Before the check, writes of unknown outcome are settled where the history decides
// them (see settle): each one left open multiplies the orders Porcupine must try, and a
// history that cannot be linearized is only proved so once all were tried.
//
// Exit status: 0 linearizable, 1 not, 3 undecided within the time limit, 2 bad input.
// When a key's history cannot be linearized, the smallest sub-history of that key that
// cannot be linearized on its own is printed as the failing window.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

const (
	exitOk      = 0
	exitIllegal = 1
	exitInput   = 2
	exitUnknown = 3
)

// record is one operation as the history file has it (and as the window prints it).
type record struct {
	Client int     `json:"client"`
	Kind   string  `json:"kind"`
	Key    string  `json:"key"`
	Value  *string `json:"value"`
	Call   *int64  `json:"call"`
	Return *int64  `json:"return"`
}

// input is what an operation asked; a read's output is the value it returned.
type input struct {
	write bool
	key   string
	value string
}

// window is the smallest failing sub-history found for one key.
type window struct {
	Key string   `json:"key"`
	Ops []record `json:"ops"`
	// Minimal: no single read, nor write whose value none of the rest read, can be
	// left out with the rest still failing (false when the time limit cut the search).
	Minimal bool `json:"minimal"`
}

type verdict struct {
	Result          string   `json:"result"`
	Operations      int      `json:"operations"`
	Keys            int      `json:"keys"`
	UnknownOutcomes int      `json:"unknown_outcomes"`
	IllegalKeys     []string `json:"illegal_keys,omitempty"`
	Window          *window  `json:"window,omitempty"`
	Error           string   `json:"error,omitempty"`
}

// model is a register per key: Porcupine checks each key's partition on its own, and a
// partition's state is that key's value ("" until written).
var model = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			key := op.Input.(input).key
			byKey[key] = append(byKey[key], op)
		}
		keys := make([]string, 0, len(byKey))
		for key := range byKey {
			keys = append(keys, key)
		}
		sort.Strings(keys) // partition i is the i-th key: the verdict names keys by index
		partitions := make([][]porcupine.Operation, len(keys))
		for i, key := range keys {
			partitions[i] = byCall(byKey[key])
		}
		return partitions
	},
	Init: func() interface{} { return "" },
	Step: func(state, in, out interface{}) (bool, interface{}) {
		op := in.(input)
		if op.write {
			return true, op.value
		}
		return out.(string) == state.(string), state
	},
	Hash: func(state interface{}) uint64 {
		h := fnv.New64a()
		_, _ = h.Write([]byte(state.(string)))
		return h.Sum64()
	},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout))
}

func run(args []string, stdout io.Writer) int {
	flags := flag.NewFlagSet("checker", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	timeout := flags.Duration("timeout", 60*time.Second,
		"time limit of the check, and again of the search for the smallest failing window")
	if err := flags.Parse(args); err != nil || flags.NArg() != 1 || *timeout <= 0 {
		return report(stdout, verdict{Result: "error",
			Error: "usage: checker [-timeout 60s] history.json"}, exitInput)
	}
	records, err := load(flags.Arg(0))
	if err != nil {
		return report(stdout, verdict{Result: "error", Error: err.Error()}, exitInput)
	}
	recorded := model.Partition(operations(records))
	history := settle(operations(records))
	partitions := model.Partition(history)
	v := verdict{Operations: len(records), Keys: len(recorded)}
	for _, r := range records {
		if r.Return == nil {
			v.UnknownOutcomes++
		}
	}
	result, info := porcupine.CheckOperationsVerbose(model, history, *timeout)
	switch result {
	case porcupine.Ok:
		v.Result = "ok"
		return report(stdout, v, exitOk)
	case porcupine.Unknown:
		v.Result = "unknown"
		return report(stdout, v, exitUnknown)
	}
	v.Result = "illegal"
	v.IllegalKeys, v.Window = failing(info, partitions, recorded, records, *timeout)
	return report(stdout, v, exitIllegal)
}

// failing names the keys that cannot be linearized and the smallest window found of one
// of them, within the time limit.
func failing(info porcupine.LinearizationInfo, partitions, recorded [][]porcupine.Operation,
	records []record, timeout time.Duration) ([]string, *window) {
	byKey := make(map[string][]porcupine.Operation, len(recorded))
	for _, ops := range recorded {
		byKey[ops[0].Input.(input).key] = ops
	}
	deadline := time.Now().Add(timeout)
	var keys []string
	var smallest *window
	// A partition is linearizable when one of its partial linearizations holds all of it.
	for i, partials := range info.PartialLinearizations() {
		if complete(partials, len(partitions[i])) {
			continue
		}
		// After one key fails the check goes on with the others until its time limit, and
		// a key it stopped looks unfinished too: each is checked again on its own.
		remaining := time.Until(deadline)
		if remaining <= 0 ||
			porcupine.CheckOperationsTimeout(model, partitions[i], remaining) != porcupine.Illegal {
			continue
		}
		key := partitions[i][0].Input.(input).key
		keys = append(keys, key)
		ops, minimal := shrink(byKey[key], deadline)
		if smallest == nil || len(ops) < len(smallest.Ops) {
			smallest = &window{Key: key, Ops: recordsOf(ops, records), Minimal: minimal}
		}
	}
	return keys, smallest
}

func load(path string) ([]record, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.DisallowUnknownFields()
	var records []record
	if err := decoder.Decode(&records); err != nil {
		return nil, fmt.Errorf("%s: not a JSON list of operations: %w", path, err)
	}
	if decoder.More() {
		return nil, fmt.Errorf("%s: text after the list of operations", path)
	}
	for i, r := range records {
		if err := validate(r); err != nil {
			return nil, fmt.Errorf("%s: operation %d: %w", path, i, err)
		}
	}
	return records, nil
}

func validate(r record) error {
	switch {
	case r.Kind != "read" && r.Kind != "write":
		return fmt.Errorf("kind %q is neither read nor write", r.Kind)
	case r.Key == "":
		return errors.New("no key")
	case r.Kind == "write" && r.Value == nil:
		return errors.New("a write without a value")
	case r.Call == nil:
		return errors.New("no call time")
	case r.Kind == "read" && r.Return == nil:
		return errors.New("a read without a return time (a failed read belongs out of the history)")
	case r.Return != nil && *r.Return < *r.Call:
		return errors.New("returns before its call")
	case r.Client < 0:
		return errors.New("a negative client")
	}
	return nil
}

// operations are the records as Porcupine takes them; each remembers its record's index.
func operations(records []record) []porcupine.Operation {
	history := make([]porcupine.Operation, len(records))
	for i, r := range records {
		ret := int64(math.MaxInt64) // outcome unknown: it may take effect at any time after its call
		if r.Return != nil {
			ret = *r.Return
		}
		value := ""
		if r.Value != nil {
			value = *r.Value
		}
		op := porcupine.Operation{ClientId: r.Client, Call: *r.Call, Return: ret, Metadata: i}
		if r.Kind == "write" {
			op.Input = input{write: true, key: r.Key, value: value}
		} else {
			op.Input, op.Output = input{key: r.Key}, value
		}
		history[i] = op
	}
	return history
}

// settle leaves out each write of unknown outcome whose value no read returned: placed
// last it changes nothing observed, so it never decides whether the history can be
// linearized. One whose value was read, and that is the only write of that value to its
// key, took effect before that read returned: its return time becomes the earliest
// return of such a read (any linearization already places it before then).
func settle(history []porcupine.Operation) []porcupine.Operation {
	type keyValue struct{ key, value string }
	firstRead := map[keyValue]int64{}
	writes := map[keyValue]int{}
	for _, op := range history {
		in := op.Input.(input)
		if in.write {
			writes[keyValue{in.key, in.value}]++
			continue
		}
		kv := keyValue{in.key, op.Output.(string)}
		if first, seen := firstRead[kv]; !seen || op.Return < first {
			firstRead[kv] = op.Return
		}
	}
	settled := make([]porcupine.Operation, 0, len(history))
	for _, op := range history {
		in := op.Input.(input)
		kv := keyValue{in.key, in.value}
		if in.write && op.Return == math.MaxInt64 {
			first, read := firstRead[kv]
			if !read {
				continue
			}
			// "" is also the value of a key never written: a read of it proves nothing.
			if in.value != "" && writes[kv] == 1 {
				op.Return = max(first, op.Call)
			}
		}
		settled = append(settled, op)
	}
	return settled
}

func complete(partials [][]int, size int) bool {
	for _, partial := range partials {
		if len(partial) == size {
			return true
		}
	}
	return false
}

// shrink drops operations from one key's failing history (as recorded: each candidate
// is settled anew) for as long as what is left still cannot be linearized, large
// time-ordered chunks first, then one at a time until none can go. Only reads, and
// writes whose value none of the remaining reads returned, are dropped: a linearization
// of the whole would remain one without them, so the window left fails for a reason the
// whole history has too.
func shrink(ops []porcupine.Operation, deadline time.Time) ([]porcupine.Operation, bool) {
	for chunk := max(len(ops)/2, 1); ; chunk = max(chunk/2, 1) {
		dropped := false
		for start := 0; start < len(ops); {
			remaining := time.Until(deadline)
			if remaining <= 0 {
				return ops, false
			}
			candidate := without(ops, start, min(start+chunk, len(ops)))
			if len(candidate) < len(ops) &&
				porcupine.CheckOperationsTimeout(model, settle(candidate), remaining) ==
					porcupine.Illegal {
				ops, dropped = candidate, true // the next chunk now starts where this one did
				continue
			}
			start += chunk
		}
		if chunk == 1 && !dropped {
			return ops, true
		}
	}
}

// without is ops less the reads in [from, to), and then less the writes in [from, to)
// whose value no read left returned.
func without(ops []porcupine.Operation, from, to int) []porcupine.Operation {
	read := map[string]bool{}
	for i, op := range ops {
		if !op.Input.(input).write && (i < from || i >= to) {
			read[op.Output.(string)] = true
		}
	}
	kept := make([]porcupine.Operation, 0, len(ops))
	for i, op := range ops {
		in := op.Input.(input)
		if i >= from && i < to && (!in.write || !read[in.value]) {
			continue
		}
		kept = append(kept, op)
	}
	return kept
}

func byCall(ops []porcupine.Operation) []porcupine.Operation {
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
	return ops
}

func recordsOf(ops []porcupine.Operation, records []record) []record {
	window := make([]record, len(ops))
	for i, op := range ops {
		window[i] = records[op.Metadata.(int)]
	}
	return window
}

func report(stdout io.Writer, v verdict, code int) int {
	encoder := json.NewEncoder(stdout)
	encoder.SetIndent("", "  ")
	if err := encoder.Encode(v); err != nil {
		return exitInput
	}
	return code
}
