package keyservice

import (
	"strconv"
	"time"

	"github.com/keyledger/keyledger/projections/policy"
)

// EpochTime is a timestamp on the AWS JSON wire: seconds since the epoch as
// a JSON number, with a fraction for sub-second precision.
type EpochTime time.Time

// MarshalJSON writes seconds with millisecond precision, as AWS does.
func (t EpochTime) MarshalJSON() ([]byte, error) {
	ms := time.Time(t).UnixMilli()
	return strconv.AppendFloat(nil, float64(ms)/1000, 'f', -1, 64), nil
}

// UnmarshalJSON accepts any JSON number of seconds, including exponents.
func (t *EpochTime) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return err
	}
	*t = EpochTime(time.UnixMilli(int64(f * 1000)).UTC())
	return nil
}

func epoch(t time.Time) *EpochTime {
	if t.IsZero() {
		return nil
	}
	e := EpochTime(t)
	return &e
}

// Caller is who sent a request, as the gateway saw it.
type Caller struct {
	AccessKeyID  string
	PrincipalARN string // arn:aws:iam::111122223333:user/alice
	Account      string
	Identity     []*policy.Document // the principal's identity (IAM) policies
	SourceIP     string
	UserAgent    string
	RequestID    string
}

// Tag is an AWS resource tag.
type Tag struct {
	TagKey   *string `json:"TagKey"`
	TagValue *string `json:"TagValue"`
}

// KeyMetadata is DescribeKey's and CreateKey's view of a key.
type KeyMetadata struct {
	AWSAccountId                string                    `json:"AWSAccountId"`
	KeyId                       string                    `json:"KeyId"`
	Arn                         string                    `json:"Arn"`
	CreationDate                EpochTime                 `json:"CreationDate"`
	Enabled                     bool                      `json:"Enabled"`
	Description                 string                    `json:"Description"`
	KeyUsage                    string                    `json:"KeyUsage"`
	KeyState                    string                    `json:"KeyState"`
	DeletionDate                *EpochTime                `json:"DeletionDate,omitempty"`
	PendingDeletionWindowInDays *int                      `json:"PendingDeletionWindowInDays,omitempty"`
	Origin                      string                    `json:"Origin"`
	KeyManager                  string                    `json:"KeyManager"`
	CustomerMasterKeySpec       string                    `json:"CustomerMasterKeySpec,omitempty"`
	KeySpec                     string                    `json:"KeySpec"`
	EncryptionAlgorithms        []string                  `json:"EncryptionAlgorithms,omitempty"`
	SigningAlgorithms           []string                  `json:"SigningAlgorithms,omitempty"`
	MacAlgorithms               []string                  `json:"MacAlgorithms,omitempty"`
	KeyAgreementAlgorithms      []string                  `json:"KeyAgreementAlgorithms,omitempty"`
	ExpirationModel             string                    `json:"ExpirationModel,omitempty"`
	ValidTo                     *EpochTime                `json:"ValidTo,omitempty"`
	MultiRegion                 bool                      `json:"MultiRegion"`
	MultiRegionConfiguration    *MultiRegionConfiguration `json:"MultiRegionConfiguration,omitempty"`
	CurrentKeyMaterialId        string                    `json:"CurrentKeyMaterialId,omitempty"`
}
