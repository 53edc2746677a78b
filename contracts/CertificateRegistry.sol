// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ICertificateRegistry} from "./ICertificateRegistry.sol";
import {Governance} from "./Governance.sol";

/// @title DPKI certificate registry
/// @notice See ICertificateRegistry for the full documentation; SECURITY.md for the threat
/// model. One deployed contract; its source is split by concern: Membership.sol (members,
/// roles, organization names, threshold), CertificateLifecycle.sol (submission, votes,
/// status changes, issuer authorisations, compromised keys), Governance.sol (proposals).
/// @dev Storage layout is chosen for gas: a certificate is one packed slot, so that an
/// endorsement rewrites an existing slot instead of creating one; validator set, submitter
/// set and threshold share one slot read once per batch.
contract CertificateRegistry is Governance {
    string private constant VERSION = "2.1.0"; // = dpki.__version__ (tests check it)

    /// @param accounts Genesis members' addresses.
    /// @param organizations Their organization names (unique, canonical).
    /// @param roles Their role bit sets.
    /// @param threshold_ Endorsements needed for activation and approvals for governance.
    constructor(
        address[] memory accounts,
        string[] memory organizations,
        uint8[] memory roles,
        uint8 threshold_
    ) {
        if (accounts.length != organizations.length) {
            revert LengthMismatch(accounts.length, organizations.length);
        }
        if (accounts.length != roles.length) revert LengthMismatch(accounts.length, roles.length);
        for (uint256 i = 0; i < accounts.length; ++i) {
            _addMember(accounts[i], organizations[i], roles[i]);
        }
        _setThreshold(threshold_);
    }

    // ------------------------------------------------------------------ certificates

    /// @inheritdoc ICertificateRegistry
    function submit(Submission calldata submission) external returns (bytes32 certId) {
        uint8 index = _requireRole(msg.sender, ROLE_SUBMITTER);
        (certId,) = _submit(submission, index, bytes32(0), false);
    }

    /// @inheritdoc ICertificateRegistry
    function submitBatch(Submission[] calldata submissions)
        external
        returns (bytes32[] memory ids)
    {
        if (submissions.length == 0) revert EmptyBatch();
        uint8 index = _requireRole(msg.sender, ROLE_SUBMITTER);
        ids = new bytes32[](submissions.length);
        for (uint256 i = 0; i < submissions.length; ++i) {
            (ids[i],) = _submit(submissions[i], index, bytes32(0), true);
        }
    }

    /// @inheritdoc ICertificateRegistry
    function renew(bytes32 oldCertId, Submission calldata submission)
        external
        returns (bytes32 certId)
    {
        Status status = _requireOwner(oldCertId);
        if (status != Status.Active && status != Status.Suspended) {
            revert InvalidStatus(oldCertId, status);
        }
        if (_records[oldCertId].flags & FLAG_QUORUM_HOLD != 0) revert HeldByQuorum(oldCertId);
        (certId,) = _submit(submission, _members[msg.sender].index, oldCertId, false);
        _replaces[certId] = oldCertId;
    }

    /// @inheritdoc ICertificateRegistry
    function endorse(bytes32 certId) external {
        uint8 index = _requireRole(msg.sender, ROLE_VALIDATOR);
        _endorse(certId, uint48(1) << index, _config(), false);
    }

    /// @inheritdoc ICertificateRegistry
    function endorseBatch(bytes32[] calldata certIds) external {
        _endorseAll(certIds);
    }

    /// @inheritdoc ICertificateRegistry
    function endorseBatchAt(bytes32[] calldata certIds, uint256 anchorBlock, bytes32 anchorHash)
        external
    {
        _requireAnchor(anchorBlock, anchorHash);
        _endorseAll(certIds);
    }

    /// @inheritdoc ICertificateRegistry
    function reject(bytes32 certId, uint8 reasonCode) external {
        uint8 index = _requireRole(msg.sender, ROLE_VALIDATOR);
        _reject(certId, uint48(1) << index, reasonCode, _config(), false);
    }

    /// @inheritdoc ICertificateRegistry
    function rejectBatch(bytes32[] calldata certIds, uint8[] calldata reasonCodes) external {
        _rejectAll(certIds, reasonCodes);
    }

    /// @inheritdoc ICertificateRegistry
    function rejectBatchAt(
        bytes32[] calldata certIds,
        uint8[] calldata reasonCodes,
        uint256 anchorBlock,
        bytes32 anchorHash
    ) external {
        _requireAnchor(anchorBlock, anchorHash);
        _rejectAll(certIds, reasonCodes);
    }

    function _endorseAll(bytes32[] calldata certIds) private {
        if (certIds.length == 0) revert EmptyBatch();
        uint48 bit = uint48(1) << _requireRole(msg.sender, ROLE_VALIDATOR);
        uint256 config = _config();
        for (uint256 i = 0; i < certIds.length; ++i) {
            _endorse(certIds[i], bit, config, true);
        }
    }

    function _rejectAll(bytes32[] calldata certIds, uint8[] calldata reasonCodes) private {
        if (certIds.length == 0) revert EmptyBatch();
        if (certIds.length != reasonCodes.length) {
            revert LengthMismatch(certIds.length, reasonCodes.length);
        }
        uint48 bit = uint48(1) << _requireRole(msg.sender, ROLE_VALIDATOR);
        uint256 config = _config();
        for (uint256 i = 0; i < certIds.length; ++i) {
            _reject(certIds[i], bit, reasonCodes[i], config, true);
        }
    }

    /// @dev blockhash is zero for the current and future blocks and those over 256 back, so a
    /// zero hash never names a block.
    function _requireAnchor(uint256 anchorBlock, bytes32 anchorHash) private view {
        if (anchorHash == bytes32(0) || blockhash(anchorBlock) != anchorHash) {
            revert StaleAnchor(anchorBlock, anchorHash);
        }
    }

    /// @inheritdoc ICertificateRegistry
    function settle(bytes32 certId) external {
        _requireRole(msg.sender, ROLE_VALIDATOR);
        _settle(certId);
    }

    /// @inheritdoc ICertificateRegistry
    function withdraw(bytes32 certId) external {
        _requirePending(certId, _requireOwner(certId));
        _withdraw(certId);
    }

    /// @inheritdoc ICertificateRegistry
    function revoke(bytes32 certId, uint8 reason) external {
        Status status = _requireOwner(certId);
        if (status == Status.Pending) revert InvalidStatus(certId, status);
        _revoke(certId, reason);
    }

    /// @inheritdoc ICertificateRegistry
    function suspend(bytes32 certId) external {
        _requireOwner(certId);
        _suspend(certId, false);
    }

    /// @inheritdoc ICertificateRegistry
    function resume(bytes32 certId) external {
        _requireOwner(certId);
        _resume(certId, false);
    }

    /// @inheritdoc ICertificateRegistry
    function reportKeyCompromise(bytes calldata der) external returns (bytes32) {
        return _reportKeyCompromise(der);
    }

    /// @inheritdoc ICertificateRegistry
    function authorizeIssuer(bytes32 caCertId) external {
        _setAuthorization(caCertId, msg.sender, true);
    }

    /// @inheritdoc ICertificateRegistry
    function deauthorizeIssuer(bytes32 caCertId) external {
        _setAuthorization(caCertId, msg.sender, false);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc ICertificateRegistry
    function isValid(bytes32 certId) external view returns (bool) {
        Record storage r = _records[certId];
        return r.status == Status.Active && block.timestamp >= r.notBefore
            && block.timestamp <= r.notAfter;
    }

    /// @inheritdoc ICertificateRegistry
    function statusOf(bytes32 certId) external view returns (CertificateStatus memory s) {
        Record memory r = _records[certId];
        if (r.status == Status.None) return s;
        s.status = r.status;
        s.submitter = _accounts[r.submitter];
        s.notBefore = r.notBefore;
        s.notAfter = r.notAfter;
        s.updatedAt = r.updatedAt;
        s.endorsements = _popcount(r.endorsedMask);
        s.rejections = _popcount(r.rejectedMask);
        s.reason = r.reason;
        s.replaces = _replaces[certId];
    }

    /// @inheritdoc ICertificateRegistry
    function endorsersOf(bytes32 certId) external view returns (address[] memory) {
        return _accountsIn(_records[certId].endorsedMask);
    }

    /// @inheritdoc ICertificateRegistry
    function rejectersOf(bytes32 certId) external view returns (address[] memory) {
        return _accountsIn(_records[certId].rejectedMask);
    }

    /// @inheritdoc ICertificateRegistry
    function hasVoted(bytes32 certId, address validator) external view returns (bool) {
        Member memory m = _members[validator];
        if (!m.known || m.retired) return false;
        Record storage r = _records[certId];
        return (r.endorsedMask | r.rejectedMask) & (uint48(1) << m.index) != 0;
    }

    /// @inheritdoc ICertificateRegistry
    function latestForKey(bytes32 keyHash) external view returns (bytes32) {
        return _latestForKey[keyHash];
    }

    /// @inheritdoc ICertificateRegistry
    function compromisedKey(bytes32 keyHash) external view returns (bytes32) {
        return _compromised[keyHash];
    }

    /// @inheritdoc ICertificateRegistry
    function isIssuerAuthorized(bytes32 caCertId, bytes32 orgHash) external view returns (bool) {
        return _authorized[caCertId][orgHash];
    }

    /// @inheritdoc ICertificateRegistry
    function heldByQuorum(bytes32 certId) external view returns (bool) {
        Record storage r = _records[certId];
        return r.status == Status.Suspended && r.flags & FLAG_QUORUM_HOLD != 0;
    }

    /// @inheritdoc ICertificateRegistry
    function replacedBy(bytes32 certId) external view returns (bytes32) {
        return _replacedBy[certId];
    }

    /// @inheritdoc ICertificateRegistry
    function members() external view returns (MemberInfo[] memory list) {
        list = new MemberInfo[](_accounts.length);
        uint256 n = 0;
        for (uint256 i = 0; i < _accounts.length; ++i) {
            address account = _accounts[i];
            Member memory m = _members[account];
            if (m.active) {
                list[n++] = MemberInfo(account, _organizations[account], m.roles, m.index);
            }
        }
        assembly ("memory-safe") {
            mstore(list, n)
        }
    }

    /// @inheritdoc ICertificateRegistry
    function memberOf(address account) external view returns (MemberInfo memory info) {
        Member memory m = _members[account];
        if (!m.active) return info;
        return MemberInfo(account, _organizations[account], m.roles, m.index);
    }

    /// @inheritdoc ICertificateRegistry
    function memberByOrganization(string calldata organization) external view returns (address) {
        return _byOrganization[sha256(bytes(organization))];
    }

    /// @inheritdoc ICertificateRegistry
    function threshold() external view returns (uint8) {
        return _threshold;
    }

    /// @inheritdoc ICertificateRegistry
    function validatorCount() external view returns (uint256) {
        return _validatorCount();
    }

    /// @inheritdoc ICertificateRegistry
    function version() external pure returns (string memory) {
        return VERSION;
    }
}
