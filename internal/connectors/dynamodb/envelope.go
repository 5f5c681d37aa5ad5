package dynamodb

import (
	"encoding/json"

	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

// plain turns an attribute value into plain JSON: S as a string, N as a
// number, B as base64, BOOL, NULL as null, M and L nested, sets as arrays.
func plain(v types.AttributeValue) any {
	switch x := v.(type) {
	case *types.AttributeValueMemberS:
		return x.Value
	case *types.AttributeValueMemberN:
		return json.Number(x.Value)
	case *types.AttributeValueMemberB:
		return x.Value // []byte marshals as base64
	case *types.AttributeValueMemberBOOL:
		return x.Value
	case *types.AttributeValueMemberNULL:
		return nil
	case *types.AttributeValueMemberM:
		return plainMap(x.Value)
	case *types.AttributeValueMemberL:
		out := make([]any, len(x.Value))
		for i, e := range x.Value {
			out[i] = plain(e)
		}
		return out
	case *types.AttributeValueMemberSS:
		return x.Value
	case *types.AttributeValueMemberNS:
		out := make([]json.Number, len(x.Value))
		for i, n := range x.Value {
			out[i] = json.Number(n)
		}
		return out
	case *types.AttributeValueMemberBS:
		return x.Value
	}
	return nil
}

func plainMap(m map[string]types.AttributeValue) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = plain(v)
	}
	return out
}

// keyJSON is the message key: the item's key attributes as a JSON object
// (encoding/json sorts the names, so one item always has one key).
func keyJSON(keys map[string]types.AttributeValue) string {
	b, _ := json.Marshal(plainMap(keys))
	return string(b)
}

// ops maps eventName to the envelope's op.
var ops = map[types.OperationType]string{types.OperationTypeInsert: "c", types.OperationTypeModify: "u", types.OperationTypeRemove: "d"}

type envelope struct {
	Before map[string]any `json:"before"`
	After  map[string]any `json:"after"`
	Source source         `json:"source"`
	Op     string         `json:"op"`
	TsMs   int64          `json:"ts_ms"`
}

type source struct {
	Version        string `json:"version"`
	Connector      string `json:"connector"`
	Name           string `json:"name"`
	TsMs           int64  `json:"ts_ms"`
	Table          string `json:"table"`
	StreamArn      string `json:"streamArn"`
	Shard          string `json:"shardId"`
	SequenceNumber string `json:"sequenceNumber"`
	EventID        string `json:"eventID"`
}
