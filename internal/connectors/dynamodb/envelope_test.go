package dynamodb

import (
	"encoding/json"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

func TestPlainAndKey(t *testing.T) {
	item := map[string]types.AttributeValue{
		"id":   &types.AttributeValueMemberN{Value: "7"},
		"name": &types.AttributeValueMemberS{Value: "x"},
		"ok":   &types.AttributeValueMemberBOOL{Value: true},
		"none": &types.AttributeValueMemberNULL{Value: true},
		"bin":  &types.AttributeValueMemberB{Value: []byte{1, 2}},
		"m":    &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"l": &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberNS{Value: []string{"1.5"}}}}}},
		"ss":   &types.AttributeValueMemberSS{Value: []string{"a", "b"}},
	}
	b, _ := json.Marshal(plainMap(item))
	if want := `{"bin":"AQI=","id":7,"m":{"l":[[1.5]]},"name":"x","none":null,"ok":true,"ss":["a","b"]}`; string(b) != want {
		t.Fatalf("%s\nwant %s", b, want)
	}
	k := keyJSON(map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "a"}, "sk": &types.AttributeValueMemberN{Value: "2"}})
	if k != `{"pk":"a","sk":2}` {
		t.Fatal(k)
	}
	if got := tableOf("arn:aws:dynamodb:us-east-1:1:table/orders/stream/2026"); got != "orders" {
		t.Fatal(got)
	}
}
