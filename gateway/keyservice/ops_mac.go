package keyservice

import (
	"context"
	"crypto/hmac"

	"github.com/keyledger/keyledger/crypto/keyspec"
	"github.com/keyledger/keyledger/crypto/mac"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/projections/keystate"
)

// MacInput, GenerateMacOutput and VerifyMacOutput are the AWS GenerateMac and
// VerifyMac members; MacInput serves both.
type (
	MacInput struct {
		Message      []byte   `json:"Message"`
		KeyId        string   `json:"KeyId"`
		MacAlgorithm string   `json:"MacAlgorithm"`
		Mac          []byte   `json:"Mac"`
		GrantTokens  []string `json:"GrantTokens"`
		DryRun       bool     `json:"DryRun"`
	}

	GenerateMacOutput struct {
		Mac          []byte `json:"Mac"`
		MacAlgorithm string `json:"MacAlgorithm"`
		KeyId        string `json:"KeyId"`
	}

	VerifyMacOutput struct {
		KeyId        string `json:"KeyId"`
		MacValid     bool   `json:"MacValid"`
		MacAlgorithm string `json:"MacAlgorithm"`
	}
)

// GenerateMac computes an HMAC with a GENERATE_VERIFY_MAC key.
func (s *Service) GenerateMac(ctx context.Context, c Caller, in *MacInput) (*GenerateMacOutput, error) {
	defer s.shared()()
	ev := s.newEvent(c, "GenerateMac")
	tag, k, err := s.computeMac(ctx, c, ev, in)
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	return &GenerateMacOutput{Mac: tag, MacAlgorithm: in.MacAlgorithm, KeyId: s.arnOf(k)}, nil
}

// VerifyMac checks an HMAC; a mismatch is KMSInvalidMacException.
func (s *Service) VerifyMac(ctx context.Context, c Caller, in *MacInput) (*VerifyMacOutput, error) {
	defer s.shared()()
	ev := s.newEvent(c, "VerifyMac")
	err := checkBlob("mac", in.Mac, 6144)
	var k keystate.Key
	if err == nil {
		var tag []byte
		if tag, k, err = s.computeMac(ctx, c, ev, in); err == nil && !hmac.Equal(tag, in.Mac) {
			err = errorf(CodeInvalidMac, "The MAC is not valid for this key, message and MAC algorithm.")
		}
	}
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	return &VerifyMacOutput{KeyId: s.arnOf(k), MacValid: true, MacAlgorithm: in.MacAlgorithm}, nil
}

// computeMac validates a MAC request and computes the MAC, naming the key
// and material on ev.
func (s *Service) computeMac(ctx context.Context, c Caller, ev *event.Event, in *MacInput) ([]byte, keystate.Key, error) {
	call := &event.APICall{Params: map[string]string{"macAlgorithm": in.MacAlgorithm}}
	ev.Body = call
	if err := checkBlob("message", in.Message, maxMessage); err != nil {
		return nil, keystate.Key{}, err
	}
	if in.MacAlgorithm == "" {
		return nil, keystate.Key{}, missing("macAlgorithm")
	}
	switch keyspec.MACAlgorithm(in.MacAlgorithm) {
	case keyspec.HMACSHA224, keyspec.HMACSHA256, keyspec.HMACSHA384, keyspec.HMACSHA512:
	default:
		return nil, keystate.Key{}, notInEnum("macAlgorithm", in.MacAlgorithm, "HMAC_SHA_224", "HMAC_SHA_256", "HMAC_SHA_384", "HMAC_SHA_512")
	}
	if err := s.checkGrantTokens(in.GrantTokens); err != nil {
		return nil, keystate.Key{}, err
	}
	k, err := s.use(c, in.KeyId, true, request{action: "kms:" + ev.Operation, extra: map[string]string{"kms:macalgorithm": in.MacAlgorithm}})
	ev.KeyID = k.ID
	if err != nil {
		return nil, k, err
	}
	if err := s.usable(k, keyspec.GenerateVerifyMAC); err != nil {
		return nil, k, err
	}
	if algs := k.Spec.MACAlgorithms(); len(algs) != 1 || string(algs[0]) != in.MacAlgorithm {
		return nil, k, errorf(CodeInvalidKeyUsage, "The MAC algorithm %s is not valid for %s (%s).", in.MacAlgorithm, s.arnOf(k), k.Spec)
	}
	m := k.CurrentMaterial()
	call.MaterialID = m.ID
	if in.DryRun {
		return nil, k, errDryRun
	}
	sec, err := s.unwrapped(ctx, m)
	if err != nil {
		return nil, k, err
	}
	tag, err := mac.Sum(k.Spec, sec, keyspec.MACAlgorithm(in.MacAlgorithm), in.Message)
	return tag, k, err
}
