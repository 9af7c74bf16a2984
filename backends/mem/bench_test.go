package mem_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/quantumflow/quantumflow/pubsub"
)

var payload256 = make([]byte, 256)

// BenchmarkPublish measures publishing alone, one message per call.
func BenchmarkPublish(b *testing.B) {
	be := open(b, "mem://")
	msgs := make([]*message.Message, b.N)
	for i := range msgs {
		msgs[i] = message.NewMessage(uuid.NewString(), payload256)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := be.Publisher().Publish("q", msgs[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}

// BenchmarkPublishConsume measures messages through the queue: published in
// batches of 100 by one goroutine, received and acked by N subscriptions.
func BenchmarkPublishConsume(b *testing.B) {
	for _, subs := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("subscriptions=%d", subs), func(b *testing.B) {
			be := open(b, "mem://")
			msgs := make([]*message.Message, b.N)
			for i := range msgs {
				msgs[i] = message.NewMessage(uuid.NewString(), payload256)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var received atomic.Int64
			done := make(chan struct{})
			var wg sync.WaitGroup
			for range subs {
				ch, err := be.Subscriber().Subscribe(ctx, "q")
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for msg := range ch {
						_ = pubsub.DeliveryOf(msg)
						msg.Ack()
						if received.Add(1) == int64(b.N) {
							close(done)
						}
					}
				}()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += 100 {
				if err := be.Publisher().Publish("q", msgs[i:min(i+100, b.N)]...); err != nil {
					b.Fatal(err)
				}
			}
			<-done
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
			cancel()
			wg.Wait()
		})
	}
}
