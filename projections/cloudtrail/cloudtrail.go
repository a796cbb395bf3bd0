// Package cloudtrail renders ledger events as AWS CloudTrail records for
// KMS (eventVersion 1.11), so existing CloudTrail tooling can read
// keyledger's audit. Records never hold plaintext, ciphertext or key
// material: events never did. Render is a pure function.
package cloudtrail

import (
	"maps"
	"strconv"
	"strings"

	"github.com/keyledger/keyledger/ledger/event"
)

// Record is one CloudTrail record.
type Record struct {
	EventVersion        string               `json:"eventVersion"`
	UserIdentity        *UserIdentity        `json:"userIdentity,omitempty"`
	EventTime           string               `json:"eventTime"`
	EventSource         string               `json:"eventSource"`
	EventName           string               `json:"eventName"`
	AWSRegion           string               `json:"awsRegion"`
	SourceIPAddress     string               `json:"sourceIPAddress,omitempty"`
	UserAgent           string               `json:"userAgent,omitempty"`
	ErrorCode           string               `json:"errorCode,omitempty"`
	ErrorMessage        string               `json:"errorMessage,omitempty"`
	RequestParameters   map[string]any       `json:"requestParameters"`
	ResponseElements    map[string]any       `json:"responseElements"`
	AdditionalEventData map[string]any       `json:"additionalEventData,omitempty"`
	RequestID           string               `json:"requestID,omitempty"`
	EventID             string               `json:"eventID"`
	ReadOnly            bool                 `json:"readOnly"`
	Resources           []Resource           `json:"resources,omitempty"`
	EventType           string               `json:"eventType"`
	ManagementEvent     bool                 `json:"managementEvent"`
	RecipientAccountID  string               `json:"recipientAccountId,omitempty"`
	EventCategory       string               `json:"eventCategory"`
	ServiceEventDetails map[string]string    `json:"serviceEventDetails,omitempty"`
	Keyledger           *KeyledgerProvenance `json:"keyledger"`
}

// UserIdentity is who made the request.
type UserIdentity struct {
	Type        string `json:"type"`
	PrincipalID string `json:"principalId,omitempty"`
	ARN         string `json:"arn,omitempty"`
	AccountID   string `json:"accountId,omitempty"`
	AccessKeyID string `json:"accessKeyId,omitempty"`
	UserName    string `json:"userName,omitempty"`
}

// Resource is a resource the event touched.
type Resource struct {
	AccountID string `json:"accountId"`
	Type      string `json:"type"`
	ARN       string `json:"ARN"`
}

// KeyledgerProvenance ties a record to its ledger event, so it can be
// checked against the chain and the signed checkpoints.
type KeyledgerProvenance struct {
	Index     uint64 `json:"index"`
	EventHash string `json:"eventHash"`
	Type      string `json:"type"`
	Reason    string `json:"denialReason,omitempty"`
}

var readOnly = map[string]bool{
	"DescribeKey": true, "ListKeys": true, "ListAliases": true, "ListResourceTags": true, "GetKeyPolicy": true,
	"ListKeyPolicies": true, "GetKeyRotationStatus": true, "ListKeyRotations": true, "GetPublicKey": true,
	"ListGrants": true, "ListRetirableGrants": true, "GetKeyLastUsage": true, "GetParametersForImport": false,
	"Encrypt": true, "Decrypt": true, "ReEncrypt": true, "GenerateDataKey": true, "GenerateDataKeyWithoutPlaintext": true,
	"GenerateDataKeyPair": true, "GenerateDataKeyPairWithoutPlaintext": true, "GenerateRandom": true,
	"Sign": true, "Verify": true, "GenerateMac": true, "VerifyMac": true, "DeriveSharedSecret": true,
}

// Render turns one committed ledger record into a CloudTrail record.
func Render(r event.Record) Record {
	e := r.Event
	out := Record{
		EventVersion: "1.11", EventTime: e.Time.UTC().Format("2006-01-02T15:04:05Z"), EventSource: "kms.amazonaws.com",
		EventName: e.Operation, AWSRegion: e.Region, EventID: r.Hash.EventID(), ReadOnly: readOnly[e.Operation],
		EventType: "AwsApiCall", ManagementEvent: true, EventCategory: "Management", RecipientAccountID: e.Account,
		RequestParameters: map[string]any{},
		Keyledger:         &KeyledgerProvenance{Index: e.Index, EventHash: r.Hash.String(), Type: e.Body.Type()},
	}
	if a := e.Actor; a != nil {
		out.SourceIPAddress, out.UserAgent, out.RequestID = a.SourceIP, a.UserAgent, a.RequestID
		out.UserIdentity = identity(a)
	} else {
		out.EventType = "AwsServiceEvent"
		out.UserIdentity = &UserIdentity{Type: "AWSService"}
		out.SourceIPAddress, out.UserAgent = "kms.amazonaws.com", "kms.amazonaws.com"
		if e.KeyID != "" {
			out.ServiceEventDetails = map[string]string{"keyId": e.KeyID}
		}
	}
	if e.Error != nil && e.Error.Code != "" {
		out.ErrorCode, out.ErrorMessage, out.Keyledger.Reason = e.Error.Code, e.Error.Message, e.Error.Reason
	}
	if e.KeyID != "" {
		arn := "arn:aws:kms:" + e.Region + ":" + e.Account + ":key/" + e.KeyID
		out.Resources = []Resource{{AccountID: e.Account, Type: "AWS::KMS::Key", ARN: arn}}
		out.RequestParameters["keyId"] = arn
	}
	parameters(e, out.RequestParameters, &out)
	multiRegion(e, out.RequestParameters, &out)
	return out
}

func identity(a *event.Actor) *UserIdentity {
	id := &UserIdentity{Type: "IAMUser", ARN: a.PrincipalARN, AccessKeyID: a.AccessKeyID, PrincipalID: a.AccessKeyID}
	if parts := strings.SplitN(a.PrincipalARN, ":", 6); len(parts) == 6 {
		id.AccountID = parts[4]
		kind, name, _ := strings.Cut(parts[5], "/")
		switch kind {
		case "user":
			id.UserName = name
		case "role":
			id.Type = "AssumedRole"
		}
	}
	return id
}

// parameters fills requestParameters (and additionalEventData) from the
// event body: the non-secret parameters CloudTrail logs for each operation.
func parameters(e *event.Event, p map[string]any, out *Record) {
	material := func(id string) {
		if id != "" {
			out.AdditionalEventData = map[string]any{"keyMaterialId": id}
		}
	}
	switch b := e.Body.(type) {
	case *event.APICall:
		if b.EncryptionAlgorithm != "" {
			p["encryptionAlgorithm"] = b.EncryptionAlgorithm
		}
		if len(b.EncryptionContext) > 0 {
			p["encryptionContext"] = maps.Clone(b.EncryptionContext)
		}
		if b.NumberOfBytes != 0 {
			p["numberOfBytes"] = b.NumberOfBytes
		}
		if b.DataKeySpec != "" {
			p["keySpec"] = b.DataKeySpec
		}
		if b.DestinationKeyID != "" {
			p["destinationKeyId"] = b.DestinationKeyID
		}
		if len(b.DestinationEncryptionContext) > 0 {
			p["destinationEncryptionContext"] = maps.Clone(b.DestinationEncryptionContext)
		}
		for k, v := range b.Params {
			if n, err := strconv.Atoi(v); err == nil && (k == "limit") {
				p[k] = n
			} else {
				p[k] = v
			}
		}
		material(b.MaterialID)
	case *event.KeyCreated:
		p["keySpec"], p["keyUsage"], p["origin"] = b.KeySpec, b.KeyUsage, b.Origin
		if b.Description != "" {
			p["description"] = b.Description
		}
		if len(b.Tags) > 0 {
			var tags []map[string]string
			for k, v := range b.Tags {
				tags = append(tags, map[string]string{"tagKey": k, "tagValue": v})
			}
			p["tags"] = tags
		}
		material(b.Material.ID)
	case *event.KeyDescriptionUpdated:
		p["description"] = b.Description
	case *event.KeyDeletionScheduled:
		p["pendingWindowInDays"] = b.PendingWindowDays
	case *event.AliasCreated:
		p["aliasName"] = b.AliasName
		p["targetKeyId"] = p["keyId"]
	case *event.AliasUpdated:
		p["aliasName"] = b.AliasName
		p["targetKeyId"] = p["keyId"]
	case *event.AliasDeleted:
		p["aliasName"] = b.AliasName
	case *event.KeyTagged:
		var tags []map[string]string
		for k, v := range b.Tags {
			tags = append(tags, map[string]string{"tagKey": k, "tagValue": v})
		}
		p["tags"] = tags
	case *event.KeyUntagged:
		p["tagKeys"] = b.TagKeys
	case *event.KeyRotationEnabled:
		p["rotationPeriodInDays"] = b.RotationPeriodDays
	case *event.KeyRotated:
		material(b.Material.ID)
	case *event.ImportParametersIssued:
		p["wrappingAlgorithm"], p["wrappingKeySpec"] = b.WrappingAlgorithm, b.WrappingKeySpec
	case *event.KeyMaterialImported:
		p["expirationModel"] = b.ExpirationModel
		if !b.ValidTo.IsZero() {
			p["validTo"] = b.ValidTo.UTC().Format("Jan 2, 2006, 3:04:05 PM")
		}
		material(b.Material.ID)
	case *event.KeyMaterialDeleted:
		material(b.MaterialID)
	case *event.KeyPolicyPut:
		p["policyName"] = "default"
		p["policy"] = b.Policy
		p["bypassPolicyLockoutSafetyCheck"] = b.BypassPolicyLockoutSafetyCheck
	case *event.GrantCreated:
		p["granteePrincipal"], p["operations"] = b.GranteePrincipal, b.Operations
		if b.RetiringPrincipal != "" {
			p["retiringPrincipal"] = b.RetiringPrincipal
		}
		if b.Name != "" {
			p["name"] = b.Name
		}
		out.ResponseElements = map[string]any{"grantId": b.GrantID}
	case *event.GrantRetired:
		p["grantId"] = b.GrantID
	}
}
