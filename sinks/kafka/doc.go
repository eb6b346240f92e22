// Package kafka is the sink that produces each event as one Kafka message
// to a topic that is a template over the event's fields (see package route),
// for example "helpdesk.{{.Type}}".
//
// # Messages
//
// The key is the event's stream id (or its id, or its tenant id: see
// [Key]); the partition is chosen from the key by murmur2, as the Java
// client does, or by FNV-1a (see [Partitioner]). The value is the JSON
// envelope of package envelope, or the event's data as stored (see
// [Value]). Every message carries the headers event-id, event-type,
// stream-id, tenant-id, seq-id and lsn (the commit LSN, as PostgreSQL prints
// it), and correlation-id and causation-id when the event has them. The
// record timestamp is the time of sending.
//
// # Durability and order
//
// Write returns nil only once the partition leaders acknowledged every
// message with acks=all. Delivery is at least once: a batch that fails is
// written again by the pipeline, and its messages that had been acknowledged
// appear twice; consumers de-duplicate on the event-id header.
//
// What must hold through failures and retries is the order of each key's
// messages in its partition: the first occurrence of every event of a
// stream comes after the first occurrence of the stream's earlier events.
// kafka-go's Writer cannot promise that: it cuts a partition's messages into
// several requests when they exceed its BatchBytes and sends them one after
// the other without stopping at a failure, so a later request can succeed
// after an earlier one failed, and the retry of the whole batch then puts
// the earlier events after the later ones.
//
// So Write does not use the Writer. It places every message itself (the
// topic's partition count from the metadata, the configured balancer over
// the key), then cuts each partition's messages, in batch order, into chunks
// of at most MaxMessageBytes (counted as kafka-go counts a message, which is
// more than its size on the wire, less 128 bytes for the batch header).
// Chunk k of every partition is sent in round k, one produce request per
// partition (kafka-go's Client.Produce, one record batch), up to 32 at once.
// Rounds run one after the other, and Write stops after the first round in
// which a request failed: within a partition, nothing is ever sent after a
// request that failed, so a retry repeats a suffix of what the partition
// received, in order. With the pipeline's default batch of 4 MiB, a batch
// spread over a handful of partitions goes in one round.
//
// # Errors
//
// A failure that may pass (a leader moving, NOT_ENOUGH_REPLICAS, a timeout,
// a broker down or unreachable) is returned as a plain error, and the
// pipeline writes the batch again after a backoff. kafka-go's transport
// caches the cluster metadata and does not refresh it on such errors, so
// after any failure the sink drops its connections: the next attempt reads
// fresh metadata.
//
// An event Kafka will never take is returned as a [cdc.RejectedError] once
// every event before it is acknowledged; the pipeline stops the sink or
// dead-letters the event (on_error). That is an event whose topic template
// fails or renders an invalid topic name, whose record is larger than
// MaxMessageBytes (checked before sending, as the Java client's
// max.request.size), or whose record a broker refuses for good:
// MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE, INVALID_RECORD, INVALID_TIMESTAMP,
// INVALID_TOPIC. A broker refuses a whole request for one bad record, so
// Write finds the record by sending the request's records again in halves,
// in order, splitting each refused half (or, when the broker names the
// record, sending those before it), then sends the other partitions' events
// that come before the refused one in the batch, and nothing after it.
//
// A topic that does not exist is created when CreateTopics is set (with
// TopicPartitions and TopicReplicationFactor; a topic created meanwhile by
// someone else is fine); otherwise it is a plain error that names the topic,
// retried until someone creates it.
//
// # Connections
//
// New connects to nothing. Check (for cdc validate) and Prepare (at the
// start of cdc run) reach the brokers and look at a constant topic. The
// connections are kept between batches and closed after five idle minutes
// or by Close; the cluster metadata is read again at least every minute.
// No error or log holds the SASL password.
//
// A change of a topic's partition count moves keys to other partitions, as
// it does with every Kafka producer: order holds only among the messages
// sent after the change.
package kafka
