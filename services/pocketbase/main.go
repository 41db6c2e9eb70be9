// Command pocketbase is the stack's PocketBase build: PocketBase used as a Go framework, with every record
// create, update and delete published to NATS.
//
// Subjects are "<prefix>.<collection>.<action>" (prefix "pb" unless NATS_SUBJECT_PREFIX says otherwise;
// action is "create", "update" or "delete"); the payload is JSON {"collection", "action", "record"}, the
// record as the API would show it (hidden fields such as password hashes left out). System collections
// (superusers, auth origins, OTPs, ...) are not published. Events are published after the change is
// committed; while NATS is unreachable they are buffered by the client and sent on reconnect.
package main

import (
	"encoding/json"
	"log"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/pocketbase/pocketbase"
	"github.com/pocketbase/pocketbase/core"
)

// Event is the JSON payload of a published record change.
type Event struct {
	Collection string       `json:"collection"`
	Action     string       `json:"action"`
	Record     *core.Record `json:"record"`
}

func main() {
	// Not pocketbase.New(): it turns dev mode (every SQL statement on the console) on when the binary's path
	// is under the temp directory, taking it for `go run`; a stack in a temp directory (tests, CI) is not.
	// Dev mode stays available with --dev.
	app := pocketbase.NewWithConfig(pocketbase.Config{})

	natsURL := os.Getenv("NATS_URL")
	if natsURL == "" {
		natsURL = nats.DefaultURL
	}
	prefix := os.Getenv("NATS_SUBJECT_PREFIX")
	if prefix == "" {
		prefix = "pb"
	}

	nc, err := nats.Connect(natsURL,
		nats.Name("pocketbase"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				app.Logger().Warn("NATS disconnected", "error", err.Error())
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			app.Logger().Info("NATS reconnected", "url", c.ConnectedUrl())
		}),
	)
	if err != nil {
		log.Fatalf("cannot set up the NATS connection to %s: %v", natsURL, err)
	}

	publish := func(action string) func(e *core.RecordEvent) error {
		return func(e *core.RecordEvent) error {
			collection := e.Record.Collection()
			if !collection.System {
				payload, err := json.Marshal(Event{Collection: collection.Name, Action: action, Record: e.Record})
				if err == nil {
					err = nc.Publish(prefix+"."+collection.Name+"."+action, payload)
				}
				if err != nil {
					app.Logger().Error("cannot publish a record event to NATS",
						"collection", collection.Name, "action", action, "error", err.Error())
				}
			}
			return e.Next()
		}
	}
	app.OnRecordAfterCreateSuccess().BindFunc(publish("create"))
	app.OnRecordAfterUpdateSuccess().BindFunc(publish("update"))
	app.OnRecordAfterDeleteSuccess().BindFunc(publish("delete"))

	app.OnTerminate().BindFunc(func(e *core.TerminateEvent) error {
		if err := nc.Drain(); err != nil {
			nc.Close()
		}
		return e.Next()
	})

	if err := app.Start(); err != nil {
		log.Fatal(err)
	}
}
