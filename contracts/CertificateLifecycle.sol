// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Membership} from "./Membership.sol";

/// @title Certificate lifecycle: submission, votes, status changes, issuer authorisations
/// @dev Who may act on a certificate:
/// - Entitlement: a submission naming (orgHash) another current member's organization is
///   refused unless the submitter owns an issuer that member or a quorum authorised for it.
///   A copier therefore cannot register a certificate with another member's O; a copy of one
///   without it is rejected by validators (the issuing CA's owner is not the submitter), and
///   a Rejected id can be registered again, as can a Pending one its submitter withdraws.
///   Neither revoke nor withdraw can burn a Pending id.
/// - Votes: only current validators count, at activation, rejection and `settle`; a vote is
///   a bit at the voter's permanent index, so one account votes once per submission.
/// - A submission whose submitter is no longer an active SUBMITTER never activates.
/// - What a quorum decided (suspension) only a quorum undoes: the QUORUM_HOLD flag.
abstract contract CertificateLifecycle is Membership {
    /// @dev Record.flags bits.
    uint8 internal constant FLAG_RENEWAL = 1;
    uint8 internal constant FLAG_QUORUM_HOLD = 2;

    /// @dev RFC 5280 CRLReason values with a meaning here.
    uint8 internal constant REASON_KEY_COMPROMISE = 1;
    uint8 internal constant REASON_SUPERSEDED = 4;
    uint8 internal constant REASON_CERTIFICATE_HOLD = 6;
    uint8 internal constant REASON_UNUSED = 7;
    uint8 internal constant REASON_REMOVE_FROM_CRL = 8;
    uint8 internal constant REASON_MAX = 10;

    /// @dev DPKI rejection codes the contract itself sets (1-16 are the validators' policy).
    uint8 internal constant REJECT_SUBMITTER_NOT_ACTIVE = 17;
    uint8 internal constant REJECT_WITHDRAWN = 18;

    /// @dev One slot: 48 + 48 + 40 + 40 + 40 + 8 + 8 + 8 + 8 = 248 bits.
    struct Record {
        uint48 endorsedMask;
        uint48 rejectedMask;
        uint40 notBefore;
        uint40 notAfter;
        uint40 updatedAt;
        uint8 submitter;
        Status status;
        uint8 reason;
        uint8 flags;
    }

    // Bit positions in the packed Record slot (Solidity packs fields from the low end);
    // tests/test_storage_layout.py checks them against the compiler's storage layout.
    uint256 internal constant MASK48 = (1 << 48) - 1;
    uint256 internal constant MASK40 = (1 << 40) - 1;
    uint256 internal constant REJECTED_SHIFT = 48;
    uint256 internal constant UPDATED_SHIFT = 176;
    uint256 internal constant SUBMITTER_SHIFT = 216;
    uint256 internal constant STATUS_SHIFT = 224;
    uint256 internal constant FLAGS_SHIFT = 240;
    // Bit positions in the slot of (_validatorMask, _submitterMask, _threshold).
    uint256 internal constant SUBMITTERS_SHIFT = 48;
    uint256 internal constant THRESHOLD_SHIFT = 96;

    mapping(bytes32 certId => Record) internal _records;
    mapping(bytes32 keyHash => bytes32 certId) internal _latestForKey;
    mapping(bytes32 newCertId => bytes32 oldCertId) internal _replaces;
    mapping(bytes32 oldCertId => bytes32 newCertId) internal _replacedBy;
    mapping(bytes32 keyHash => bytes32 certId) internal _compromised;
    mapping(bytes32 caCertId => mapping(bytes32 orgHash => bool)) internal _authorized;
    /// @dev Per organization, how many authorised issuers each member index owns.
    mapping(bytes32 orgHash => mapping(uint8 index => uint256 count)) internal _vouchers;

    // ------------------------------------------------------------------ submission

    /// @dev Returns the id and whether it was registered (false: skipped in a batch because
    /// another submission holds it).
    function _submit(Submission calldata s, uint8 submitter, bytes32 replaces, bool skipTaken)
        internal
        returns (bytes32 certId, bool registered)
    {
        if (s.der.length == 0) revert EmptyCertificate();
        if (s.notBefore >= s.notAfter) revert InvalidValidity(s.notBefore, s.notAfter);
        certId = sha256(s.der);
        Status previous = _records[certId].status;
        if (previous != Status.None && previous != Status.Rejected) {
            if (skipTaken) return (certId, false);
            revert CertificateAlreadyRegistered(certId);
        }
        if (s.orgHash != bytes32(0)) {
            address owner = _byOrganization[s.orgHash];
            if (owner != address(0) && owner != msg.sender && _vouchers[s.orgHash][submitter] == 0)
            {
                revert NotEntitled(certId, msg.sender, s.orgHash);
            }
        }
        _records[certId] = Record({
            endorsedMask: 0,
            rejectedMask: 0,
            notBefore: s.notBefore,
            notAfter: s.notAfter,
            updatedAt: uint40(block.timestamp),
            submitter: submitter,
            status: Status.Pending,
            reason: 0,
            flags: replaces == bytes32(0) ? 0 : FLAG_RENEWAL
        });
        if (previous == Status.Rejected) _replaces[certId] = replaces;
        bytes32 latest = _latestForKey[s.keyHash];
        if (latest == bytes32(0) || _mayRepoint(_records[latest], submitter)) {
            _latestForKey[s.keyHash] = certId;
        }
        emit CertificateSubmitted(
            certId, msg.sender, s.keyHash, s.orgHash, s.notBefore, s.notAfter, replaces, s.der
        );
        return (certId, true);
    }

    /// @dev Another member's Active or Suspended certificate keeps the key's pointer.
    function _mayRepoint(Record storage latest, uint8 submitter) private view returns (bool) {
        Status status = latest.status;
        return latest.submitter == submitter
            || (status != Status.Active && status != Status.Suspended);
    }

    // ------------------------------------------------------------------ votes

    /// @dev The slot holding (_validatorMask, _submitterMask, _threshold).
    function _config() internal view returns (uint256 config) {
        assembly ("memory-safe") {
            config := sload(_validatorMask.slot)
        }
    }

    /// @dev Works on the raw slot word: an endorsement is the hot path of provisioning, and
    /// unpacking the struct into memory and back costs more than the storage write itself.
    function _endorse(bytes32 certId, uint48 bit, uint256 config, bool inBatch) internal {
        Record storage r = _records[certId];
        uint256 word;
        assembly ("memory-safe") {
            word := sload(r.slot)
        }
        Status status = Status(uint8(word >> STATUS_SHIFT));
        if (inBatch && status > Status.Pending) return;
        _requirePending(certId, status);
        if ((word | (word >> REJECTED_SHIFT)) & bit != 0) revert AlreadyVoted(certId, msg.sender);
        uint256 submitter = uint8(word >> SUBMITTER_SHIFT);
        if ((config >> (SUBMITTERS_SHIFT + submitter)) & 1 == 0) {
            if (inBatch) return;
            revert SubmitterNotActive(certId, _accounts[submitter]);
        }
        word |= bit;
        uint8 count = _popcount(uint48(word & config));
        if (count >= uint8(config >> THRESHOLD_SHIFT)) {
            status = Status.Active;
            word = (word & ~((uint256(0xff) << STATUS_SHIFT) | (MASK40 << UPDATED_SHIFT)))
                | (uint256(uint8(Status.Active)) << STATUS_SHIFT)
                | (uint256(uint40(block.timestamp)) << UPDATED_SHIFT);
        }
        assembly ("memory-safe") {
            sstore(r.slot, word)
        }
        emit CertificateEndorsed(certId, msg.sender, count, status);
        if (status == Status.Active && (word >> FLAGS_SHIFT) & FLAG_RENEWAL != 0) {
            _supersede(_replaces[certId], certId);
        }
    }

    function _reject(bytes32 certId, uint48 bit, uint8 reasonCode, uint256 config, bool inBatch)
        internal
    {
        Record memory r = _records[certId];
        if (inBatch && r.status > Status.Pending) return;
        _requirePending(certId, r.status);
        if ((r.endorsedMask | r.rejectedMask) & bit != 0) revert AlreadyVoted(certId, msg.sender);
        r.rejectedMask |= bit;
        r.reason = reasonCode;
        uint48 validators = uint48(config);
        uint8 count = _popcount(r.rejectedMask & validators);
        // Rejected once the current validators that did not reject can no longer reach it.
        if (_popcount(validators) < uint256(count) + uint8(config >> THRESHOLD_SHIFT)) {
            r.status = Status.Rejected;
            r.updatedAt = uint40(block.timestamp);
        }
        _records[certId] = r;
        emit CertificateRejected(certId, msg.sender, reasonCode, count, r.status);
    }

    function _settle(bytes32 certId) internal {
        Record storage r = _records[certId];
        Status status = r.status;
        _requirePending(certId, status);
        uint256 config = _config();
        uint48 validators = uint48(config);
        uint8 threshold_ = uint8(config >> THRESHOLD_SHIFT);
        uint8 endorsements = _popcount(r.endorsedMask & validators);
        uint8 rejections = _popcount(r.rejectedMask & validators);
        bool submitterActive = (config >> (SUBMITTERS_SHIFT + r.submitter)) & 1 != 0;
        if (!submitterActive) {
            _setStatus(certId, Status.Pending, Status.Rejected, REJECT_SUBMITTER_NOT_ACTIVE);
        } else if (endorsements >= threshold_) {
            _setStatus(certId, Status.Pending, Status.Active, 0);
            if (r.flags & FLAG_RENEWAL != 0) _supersede(_replaces[certId], certId);
        } else if (_popcount(validators) < uint256(rejections) + threshold_) {
            _setStatus(certId, Status.Pending, Status.Rejected, r.reason);
        } else {
            revert CertificateUndecided(certId, endorsements, rejections);
        }
    }

    // ------------------------------------------------------------------ status changes

    function _supersede(bytes32 oldCertId, bytes32 newCertId) internal {
        Record storage old = _records[oldCertId];
        Status previous = old.status;
        if (previous != Status.Active && previous != Status.Suspended) return;
        _replacedBy[oldCertId] = newCertId;
        old.status = Status.Superseded;
        old.reason = REASON_SUPERSEDED;
        old.updatedAt = uint40(block.timestamp);
        emit CertificateStatusChanged(
            oldCertId, msg.sender, previous, Status.Superseded, REASON_SUPERSEDED
        );
    }

    function _revoke(bytes32 certId, uint8 reason) internal {
        Status previous = _checkRevocable(certId, reason);
        _setStatus(certId, previous, Status.Revoked, reason);
    }

    function _withdraw(bytes32 certId) internal {
        _setStatus(certId, Status.Pending, Status.Rejected, REJECT_WITHDRAWN);
    }

    /// @dev A quorum may also suspend what its submitter suspended (to hold it).
    function _checkSuspendable(bytes32 certId, bool byQuorum)
        internal
        view
        returns (Status previous)
    {
        Record storage r = _records[certId];
        previous = r.status;
        if (previous == Status.None) revert UnknownCertificate(certId);
        bool allowed = previous == Status.Active
            || (byQuorum && previous == Status.Suspended && r.flags & FLAG_QUORUM_HOLD == 0);
        if (!allowed) revert InvalidStatus(certId, previous);
    }

    function _suspend(bytes32 certId, bool byQuorum) internal {
        Status previous = _checkSuspendable(certId, byQuorum);
        if (byQuorum) _records[certId].flags |= FLAG_QUORUM_HOLD;
        _setStatus(certId, previous, Status.Suspended, REASON_CERTIFICATE_HOLD);
    }

    function _resume(bytes32 certId, bool byQuorum) internal {
        _requireStatus(certId, Status.Suspended);
        Record storage r = _records[certId];
        if (r.flags & FLAG_QUORUM_HOLD != 0) {
            if (!byQuorum) revert HeldByQuorum(certId);
            r.flags &= ~FLAG_QUORUM_HOLD;
        }
        _setStatus(certId, Status.Suspended, Status.Active, 0);
    }

    function _setStatus(bytes32 certId, Status previous, Status status, uint8 reason) internal {
        Record storage r = _records[certId];
        r.status = status;
        r.reason = reason;
        r.updatedAt = uint40(block.timestamp);
        emit CertificateStatusChanged(certId, msg.sender, previous, status, reason);
    }

    function _checkReason(uint8 reason) internal pure {
        // RFC 5280 CRLReason: 6 certificateHold is `suspend`; 7 is unused; 8 removeFromCRL
        // is `resume`.
        if (
            reason > REASON_MAX || reason == REASON_CERTIFICATE_HOLD || reason == REASON_UNUSED
                || reason == REASON_REMOVE_FROM_CRL
        ) {
            revert InvalidRevocationReason(reason);
        }
    }

    function _checkRevocable(bytes32 certId, uint8 reason) internal view returns (Status status) {
        _checkReason(reason);
        status = _records[certId].status;
        if (status == Status.None) revert UnknownCertificate(certId);
        if (status == Status.Revoked || status == Status.Rejected) {
            revert InvalidStatus(certId, status);
        }
    }

    function _requireStatus(bytes32 certId, Status wanted) internal view {
        Status status = _records[certId].status;
        if (status == Status.None) revert UnknownCertificate(certId);
        if (status != wanted) revert InvalidStatus(certId, status);
    }

    function _requirePending(bytes32 certId, Status status) internal pure {
        if (status == Status.Pending) return;
        if (status == Status.None) revert UnknownCertificate(certId);
        revert InvalidStatus(certId, status);
    }

    /// @dev The caller must hold the SUBMITTER role and have submitted the certificate: a
    /// member demoted to validator-only no longer acts alone on its certificates (a quorum
    /// still can).
    function _requireOwner(bytes32 certId) internal view returns (Status) {
        uint8 index = _requireRole(msg.sender, ROLE_SUBMITTER);
        Record storage r = _records[certId];
        Status status = r.status;
        if (status == Status.None) revert UnknownCertificate(certId);
        if (r.submitter != index) revert NotCertificateOwner(certId, msg.sender);
        return status;
    }

    // ------------------------------------------------------------------ compromised keys

    function _reportKeyCompromise(bytes calldata der) internal returns (bytes32 keyHash) {
        bytes32 certId = sha256(der);
        Record storage r = _records[certId];
        if (r.status == Status.None) revert UnknownCertificate(certId);
        if (r.status != Status.Revoked || r.reason != REASON_KEY_COMPROMISE) {
            revert NotRevokedForKeyCompromise(certId);
        }
        keyHash = _spkiHash(der, certId);
        if (_compromised[keyHash] == bytes32(0)) {
            _compromised[keyHash] = certId;
            emit KeyCompromised(keyHash, certId, msg.sender);
        }
    }

    /// @dev sha256 of the SubjectPublicKeyInfo TLV: Certificate > TBSCertificate > [version],
    /// serial, signature, issuer, validity, subject, subjectPublicKeyInfo.
    function _spkiHash(bytes calldata der, bytes32 certId) private pure returns (bytes32) {
        (uint256 p,) = _tlv(der, 0, 0x30, certId);
        (p,) = _tlv(der, p, 0x30, certId);
        if (p < der.length && uint8(der[p]) == 0xa0) (, p) = _tlv(der, p, 0xa0, certId);
        for (uint256 i = 0; i < 5; ++i) {
            (, p) = _tlv(der, p, 0, certId);
        }
        (, uint256 end) = _tlv(der, p, 0x30, certId);
        return sha256(der[p:end]);
    }

    /// @dev Return the start of the content and the end of the TLV at `p`; `tag` 0 = any.
    function _tlv(bytes calldata der, uint256 p, uint8 tag, bytes32 certId)
        private
        pure
        returns (uint256 content, uint256 end)
    {
        if (p + 2 > der.length || (tag != 0 && uint8(der[p]) != tag)) {
            revert MalformedCertificate(certId);
        }
        uint256 length = uint8(der[p + 1]);
        content = p + 2;
        if (length & 0x80 != 0) {
            uint256 n = length & 0x7f;
            if (n == 0 || n > 3 || content + n > der.length) revert MalformedCertificate(certId);
            length = 0;
            for (uint256 i = 0; i < n; ++i) {
                length = (length << 8) | uint8(der[content + i]);
            }
            content += n;
        }
        end = content + length;
        if (end > der.length) revert MalformedCertificate(certId);
    }

    // ------------------------------------------------------------------ issuer authorisations

    function _setAuthorization(bytes32 caCertId, address member, bool authorized) internal {
        _requireMember(member);
        bytes32 orgHash = sha256(bytes(_organizations[member]));
        if (_authorized[caCertId][orgHash] == authorized) {
            revert AuthorizationUnchanged(caCertId, orgHash, authorized);
        }
        Record storage ca = _records[caCertId];
        if (authorized) _requireStatus(caCertId, Status.Active);
        _authorized[caCertId][orgHash] = authorized;
        if (authorized) {
            ++_vouchers[orgHash][ca.submitter];
        } else {
            --_vouchers[orgHash][ca.submitter];
        }
        emit IssuerAuthorizationChanged(caCertId, orgHash, member, msg.sender, authorized);
    }
}
