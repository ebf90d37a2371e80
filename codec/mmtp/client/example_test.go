package client_test

import (
	"context"
	"fmt"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp/client"
)

// savedEpoch and savedSeq stand for a PushCursor position the app persisted.
const (
	savedEpoch = ""
	savedSeq   = 0
)

func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "127.0.0.1:9000", client.Options{
		AppID: "wallet", DeviceID: "dev-1", Secret: []byte("wallet-secret"), Hello: true,
		Timeout: 3 * time.Second,
		OnPush: func(topic string, hdr codec.Header, body []byte) {
			fmt.Println("push", topic, len(body)) // PUSH_ACK is sent after this returns
		},
		// Resume where the last connection stopped; redelivered pushes are dropped.
		Push:        client.NewPushCursor(savedEpoch, savedSeq),
		OnPushReset: func(epoch string) { fmt.Println("push history lost: re-sync") },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	resp, err := c.Call(ctx, "demo.echo", codec.Header{{Key: "content-type", Value: "text/plain"}}, []byte("hi"))
	if err != nil {
		fmt.Println(err) // *client.GoAwayError: retry on a new connection
		return
	}
	fmt.Println(resp.Status, string(resp.Body))
}
