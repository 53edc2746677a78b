// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ICertificateRegistry} from "./ICertificateRegistry.sol";

/// @title DPKI certificate registry
/// @notice See ICertificateRegistry for the full documentation.
/// @dev Storage layout is chosen for gas: a certificate is one packed slot, so that an
/// endorsement rewrites a warm-able existing slot instead of creating one. Member indexes
/// are bit positions in 48-bit sets, never reused, so a registry holds at most 48 members
/// over its lifetime.
contract CertificateRegistry is ICertificateRegistry {
    uint8 public constant ROLE_VALIDATOR = 1;
    uint8 public constant ROLE_SUBMITTER = 2;
    uint256 public constant MAX_MEMBERS = 48;

    uint8 private constant _FLAG_RENEWAL = 1;
    uint8 private constant _REASON_SUPERSEDED = 4;
    uint8 private constant _REASON_CERTIFICATE_HOLD = 6;

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

    struct Member {
        uint8 index;
        uint8 roles;
        bool active;
    }

    struct Proposal {
        ProposalKind kind;
        bool executed;
        bool cancelled;
        uint8 roles;
        uint8 threshold;
        uint8 reason;
        uint48 approvalMask;
        address proposer;
        address account;
        bytes32 certId;
        string organization;
    }

    mapping(bytes32 certId => Record) private _records;
    mapping(bytes32 keyHash => bytes32 certId) private _latestForKey;
    mapping(bytes32 newCertId => bytes32 oldCertId) private _replaces;
    mapping(bytes32 oldCertId => bytes32 newCertId) private _replacedBy;

    mapping(address account => Member) private _members;
    mapping(address account => string) private _organizations;
    mapping(bytes32 organizationHash => address account) private _byOrganization;
    address[] private _accounts;
    uint48 private _validatorMask;
    uint8 private _threshold;

    mapping(uint256 proposalId => Proposal) private _proposals;
    uint256 private _proposalCount;

    /// @param accounts Genesis members' addresses.
    /// @param organizations Their organization names (unique).
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
    function submit(Submission calldata submission) external returns (bytes32) {
        uint8 index = _requireRole(msg.sender, ROLE_SUBMITTER);
        return _submit(submission, index, bytes32(0));
    }

    /// @inheritdoc ICertificateRegistry
    function submitBatch(Submission[] calldata submissions) external returns (bytes32[] memory ids) {
        if (submissions.length == 0) revert EmptyBatch();
        uint8 index = _requireRole(msg.sender, ROLE_SUBMITTER);
        ids = new bytes32[](submissions.length);
        for (uint256 i = 0; i < submissions.length; ++i) {
            ids[i] = _submit(submissions[i], index, bytes32(0));
        }
    }

    /// @inheritdoc ICertificateRegistry
    function renew(bytes32 oldCertId, Submission calldata submission) external returns (bytes32) {
        uint8 index = _requireRole(msg.sender, ROLE_SUBMITTER);
        Record memory old = _records[oldCertId];
        if (old.status == Status.None) revert UnknownCertificate(oldCertId);
        if (old.submitter != index) revert NotCertificateOwner(oldCertId, msg.sender);
        if (old.status != Status.Active && old.status != Status.Suspended) {
            revert InvalidStatus(oldCertId, old.status);
        }
        bytes32 certId = _submit(submission, index, oldCertId);
        _replaces[certId] = oldCertId;
        return certId;
    }

    /// @inheritdoc ICertificateRegistry
    function endorse(bytes32 certId) external {
        uint8 index = _requireRole(msg.sender, ROLE_VALIDATOR);
        _endorse(certId, uint48(1) << index, _threshold, false);
    }

    /// @inheritdoc ICertificateRegistry
    function endorseBatch(bytes32[] calldata certIds) external {
        if (certIds.length == 0) revert EmptyBatch();
        uint48 bit = uint48(1) << _requireRole(msg.sender, ROLE_VALIDATOR);
        uint8 threshold_ = _threshold;
        for (uint256 i = 0; i < certIds.length; ++i) {
            _endorse(certIds[i], bit, threshold_, true);
        }
    }

    /// @inheritdoc ICertificateRegistry
    function reject(bytes32 certId, uint8 reasonCode) external {
        uint8 index = _requireRole(msg.sender, ROLE_VALIDATOR);
        _reject(certId, uint48(1) << index, reasonCode, false);
    }

    /// @inheritdoc ICertificateRegistry
    function rejectBatch(bytes32[] calldata certIds, uint8[] calldata reasonCodes) external {
        if (certIds.length == 0) revert EmptyBatch();
        if (certIds.length != reasonCodes.length) {
            revert LengthMismatch(certIds.length, reasonCodes.length);
        }
        uint48 bit = uint48(1) << _requireRole(msg.sender, ROLE_VALIDATOR);
        for (uint256 i = 0; i < certIds.length; ++i) {
            _reject(certIds[i], bit, reasonCodes[i], true);
        }
    }

    /// @inheritdoc ICertificateRegistry
    function revoke(bytes32 certId, uint8 reason) external {
        _requireOwner(certId);
        _revoke(certId, reason);
    }

    /// @inheritdoc ICertificateRegistry
    function suspend(bytes32 certId) external {
        _requireOwner(certId);
        _suspend(certId);
    }

    /// @inheritdoc ICertificateRegistry
    function resume(bytes32 certId) external {
        _requireOwner(certId);
        _resume(certId);
    }

    // ------------------------------------------------------------------ governance

    /// @inheritdoc ICertificateRegistry
    function proposeAddMember(address account, string calldata organization, uint8 roles)
        external
        returns (uint256)
    {
        _checkNewMember(account, organization, roles);
        Proposal storage p = _newProposal(ProposalKind.AddMember);
        p.account = account;
        p.organization = organization;
        p.roles = roles;
        return _open(p);
    }

    /// @inheritdoc ICertificateRegistry
    function proposeRemoveMember(address account) external returns (uint256) {
        _requireMember(account);
        Proposal storage p = _newProposal(ProposalKind.RemoveMember);
        p.account = account;
        return _open(p);
    }

    /// @inheritdoc ICertificateRegistry
    function proposeSetRoles(address account, uint8 roles) external returns (uint256) {
        _requireMember(account);
        _checkRoles(roles);
        Proposal storage p = _newProposal(ProposalKind.SetRoles);
        p.account = account;
        p.roles = roles;
        return _open(p);
    }

    /// @inheritdoc ICertificateRegistry
    function proposeThreshold(uint8 threshold_) external returns (uint256) {
        _checkThreshold(threshold_, _validatorCount());
        Proposal storage p = _newProposal(ProposalKind.SetThreshold);
        p.threshold = threshold_;
        return _open(p);
    }

    /// @inheritdoc ICertificateRegistry
    function proposeRevoke(bytes32 certId, uint8 reason) external returns (uint256) {
        _checkRevocable(certId, reason);
        Proposal storage p = _newProposal(ProposalKind.Revoke);
        p.certId = certId;
        p.reason = reason;
        return _open(p);
    }

    /// @inheritdoc ICertificateRegistry
    function proposeSuspend(bytes32 certId) external returns (uint256) {
        _requireStatus(certId, Status.Active);
        Proposal storage p = _newProposal(ProposalKind.Suspend);
        p.certId = certId;
        return _open(p);
    }

    /// @inheritdoc ICertificateRegistry
    function proposeResume(bytes32 certId) external returns (uint256) {
        _requireStatus(certId, Status.Suspended);
        Proposal storage p = _newProposal(ProposalKind.Resume);
        p.certId = certId;
        return _open(p);
    }

    /// @inheritdoc ICertificateRegistry
    function approve(uint256 proposalId) external {
        uint48 bit = uint48(1) << _requireRole(msg.sender, ROLE_VALIDATOR);
        Proposal storage p = _openProposal(proposalId);
        if (p.approvalMask & bit != 0) revert AlreadyApproved(proposalId, msg.sender);
        p.approvalMask |= bit;
        _tally(proposalId, p);
    }

    /// @inheritdoc ICertificateRegistry
    function execute(uint256 proposalId) external {
        _requireRole(msg.sender, ROLE_VALIDATOR);
        Proposal storage p = _openProposal(proposalId);
        uint8 approvals = _popcount(p.approvalMask & _validatorMask);
        if (approvals < _threshold) revert QuorumNotReached(proposalId, approvals, _threshold);
        _execute(proposalId, p);
    }

    /// @inheritdoc ICertificateRegistry
    function cancel(uint256 proposalId) external {
        Proposal storage p = _openProposal(proposalId);
        if (p.proposer != msg.sender) revert NotProposer(proposalId, msg.sender);
        p.cancelled = true;
        emit ProposalCancelled(proposalId);
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
        if (!m.active) return false;
        Record storage r = _records[certId];
        return (r.endorsedMask | r.rejectedMask) & (uint48(1) << m.index) != 0;
    }

    /// @inheritdoc ICertificateRegistry
    function latestForKey(bytes32 keyHash) external view returns (bytes32) {
        return _latestForKey[keyHash];
    }

    /// @inheritdoc ICertificateRegistry
    function replacedBy(bytes32 certId) external view returns (bytes32) {
        return _replacedBy[certId];
    }

    /// @inheritdoc ICertificateRegistry
    function members() external view returns (MemberInfo[] memory list) {
        uint256 n = 0;
        for (uint256 i = 0; i < _accounts.length; ++i) {
            if (_members[_accounts[i]].active) ++n;
        }
        list = new MemberInfo[](n);
        n = 0;
        for (uint256 i = 0; i < _accounts.length; ++i) {
            address account = _accounts[i];
            Member memory m = _members[account];
            // An account removed and added again appears once, at its newest index.
            if (m.active && m.index == i) {
                list[n++] = MemberInfo(account, _organizations[account], m.roles, m.index);
            }
        }
        assembly {
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
        return _byOrganization[keccak256(bytes(organization))];
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
    function proposalCount() external view returns (uint256) {
        return _proposalCount;
    }

    /// @inheritdoc ICertificateRegistry
    function proposal(uint256 proposalId) external view returns (ProposalInfo memory) {
        if (proposalId == 0 || proposalId > _proposalCount) revert UnknownProposal(proposalId);
        Proposal storage p = _proposals[proposalId];
        return ProposalInfo({
            kind: p.kind,
            proposer: p.proposer,
            executed: p.executed,
            cancelled: p.cancelled,
            approvals: _popcount(p.approvalMask & _validatorMask),
            account: p.account,
            roles: p.roles,
            threshold: p.threshold,
            certId: p.certId,
            reason: p.reason,
            organization: p.organization
        });
    }

    /// @inheritdoc ICertificateRegistry
    function hasApproved(uint256 proposalId, address validator) external view returns (bool) {
        Member memory m = _members[validator];
        return m.active && _proposals[proposalId].approvalMask & (uint48(1) << m.index) != 0;
    }

    /// @inheritdoc ICertificateRegistry
    function version() external pure returns (string memory) {
        return "1.0.0";
    }

    // ------------------------------------------------------------------ internals: certificates

    function _submit(Submission calldata s, uint8 submitter, bytes32 replaces)
        private
        returns (bytes32 certId)
    {
        if (s.der.length == 0) revert EmptyCertificate();
        if (s.notBefore >= s.notAfter) revert InvalidValidity(s.notBefore, s.notAfter);
        certId = sha256(s.der);
        if (_records[certId].status != Status.None) revert CertificateAlreadyRegistered(certId);
        _records[certId] = Record({
            endorsedMask: 0,
            rejectedMask: 0,
            notBefore: s.notBefore,
            notAfter: s.notAfter,
            updatedAt: uint40(block.timestamp),
            submitter: submitter,
            status: Status.Pending,
            reason: 0,
            flags: replaces == bytes32(0) ? 0 : _FLAG_RENEWAL
        });
        _latestForKey[s.keyHash] = certId;
        emit CertificateSubmitted(
            certId, msg.sender, s.keyHash, s.orgHash, s.notBefore, s.notAfter, replaces, s.der
        );
    }

    // Bit positions of the packed Record slot (Solidity packs fields from the low end).
    uint256 private constant _MASK48 = (1 << 48) - 1;
    uint256 private constant _UPDATED_SHIFT = 176;
    uint256 private constant _STATUS_SHIFT = 224;
    uint256 private constant _FLAGS_SHIFT = 240;

    /// @dev Works on the raw slot word: an endorsement is the hot path of provisioning, and
    /// unpacking the struct into memory and back costs more than the storage write itself.
    function _endorse(bytes32 certId, uint48 bit, uint8 threshold_, bool skipDecided) private {
        Record storage r = _records[certId];
        uint256 word;
        assembly ("memory-safe") {
            word := sload(r.slot)
        }
        Status status = Status(uint8(word >> _STATUS_SHIFT));
        if (skipDecided && status > Status.Pending) return;
        _requirePending(certId, status);
        if ((word | (word >> 48)) & bit != 0) revert AlreadyVoted(certId, msg.sender);
        word |= bit;
        uint8 count = _popcount(uint48(word & _MASK48));
        if (count >= threshold_) {
            status = Status.Active;
            word = (word & ~((uint256(0xff) << _STATUS_SHIFT) | (uint256(0xffffffffff) << _UPDATED_SHIFT)))
                | (uint256(uint8(Status.Active)) << _STATUS_SHIFT)
                | (uint256(uint40(block.timestamp)) << _UPDATED_SHIFT);
        }
        assembly ("memory-safe") {
            sstore(r.slot, word)
        }
        emit CertificateEndorsed(certId, msg.sender, count, status);
        if (status == Status.Active && (word >> _FLAGS_SHIFT) & _FLAG_RENEWAL != 0) {
            _supersede(_replaces[certId], certId);
        }
    }

    function _reject(bytes32 certId, uint48 bit, uint8 reasonCode, bool skipDecided) private {
        Record memory r = _records[certId];
        if (skipDecided && r.status > Status.Pending) return;
        _requirePending(certId, r.status);
        if ((r.endorsedMask | r.rejectedMask) & bit != 0) revert AlreadyVoted(certId, msg.sender);
        r.rejectedMask |= bit;
        r.reason = reasonCode;
        uint8 count = _popcount(r.rejectedMask);
        // Rejected once the remaining validators can no longer reach the threshold.
        if (_validatorCount() < uint256(count) + _threshold) {
            r.status = Status.Rejected;
            r.updatedAt = uint40(block.timestamp);
        }
        _records[certId] = r;
        emit CertificateRejected(certId, msg.sender, reasonCode, count, r.status);
    }

    function _supersede(bytes32 oldCertId, bytes32 newCertId) private {
        Record storage old = _records[oldCertId];
        Status previous = old.status;
        if (previous != Status.Active && previous != Status.Suspended) return;
        _replacedBy[oldCertId] = newCertId;
        old.status = Status.Superseded;
        old.reason = _REASON_SUPERSEDED;
        old.updatedAt = uint40(block.timestamp);
        emit CertificateStatusChanged(
            oldCertId, msg.sender, previous, Status.Superseded, _REASON_SUPERSEDED
        );
    }

    function _revoke(bytes32 certId, uint8 reason) private {
        Status previous = _checkRevocable(certId, reason);
        _setStatus(certId, previous, Status.Revoked, reason);
    }

    function _suspend(bytes32 certId) private {
        _requireStatus(certId, Status.Active);
        _setStatus(certId, Status.Active, Status.Suspended, _REASON_CERTIFICATE_HOLD);
    }

    function _resume(bytes32 certId) private {
        _requireStatus(certId, Status.Suspended);
        _setStatus(certId, Status.Suspended, Status.Active, 0);
    }

    function _setStatus(bytes32 certId, Status previous, Status status, uint8 reason) private {
        Record storage r = _records[certId];
        r.status = status;
        r.reason = reason;
        r.updatedAt = uint40(block.timestamp);
        emit CertificateStatusChanged(certId, msg.sender, previous, status, reason);
    }

    function _checkRevocable(bytes32 certId, uint8 reason) private view returns (Status status) {
        // RFC 5280 CRLReason: 6 certificateHold is `suspend`; 7 is unused; 8 removeFromCRL
        // is `resume`.
        if (reason > 10 || reason == 6 || reason == 7 || reason == 8) {
            revert InvalidRevocationReason(reason);
        }
        status = _records[certId].status;
        if (status == Status.None) revert UnknownCertificate(certId);
        if (status == Status.Revoked || status == Status.Rejected) {
            revert InvalidStatus(certId, status);
        }
    }

    function _requireStatus(bytes32 certId, Status wanted) private view {
        Status status = _records[certId].status;
        if (status == Status.None) revert UnknownCertificate(certId);
        if (status != wanted) revert InvalidStatus(certId, status);
    }

    function _requirePending(bytes32 certId, Status status) private pure {
        if (status == Status.Pending) return;
        if (status == Status.None) revert UnknownCertificate(certId);
        revert InvalidStatus(certId, status);
    }

    function _requireOwner(bytes32 certId) private view {
        Member memory m = _requireMember(msg.sender);
        Record storage r = _records[certId];
        if (r.status == Status.None) revert UnknownCertificate(certId);
        if (r.submitter != m.index) revert NotCertificateOwner(certId, msg.sender);
    }

    // ------------------------------------------------------------------ internals: members

    function _requireMember(address account) private view returns (Member memory m) {
        m = _members[account];
        if (!m.active) revert NotAMember(account);
    }

    function _requireRole(address account, uint8 role) private view returns (uint8) {
        Member memory m = _requireMember(account);
        if (m.roles & role == 0) {
            if (role == ROLE_VALIDATOR) revert NotAValidator(account);
            revert NotASubmitter(account);
        }
        return m.index;
    }

    function _checkRoles(uint8 roles) private pure {
        if (roles == 0 || roles & ~(ROLE_VALIDATOR | ROLE_SUBMITTER) != 0) {
            revert InvalidRoles(roles);
        }
    }

    function _checkThreshold(uint8 threshold_, uint256 validators) private pure {
        if (threshold_ == 0 || threshold_ > validators) {
            revert InvalidThreshold(threshold_, validators);
        }
    }

    function _checkNewMember(address account, string memory organization, uint8 roles)
        private
        view
    {
        if (account == address(0)) revert ZeroAddress();
        if (_members[account].active) revert AlreadyAMember(account);
        uint256 length = bytes(organization).length;
        if (length == 0 || length > 64) revert InvalidOrganization(organization);
        if (_byOrganization[keccak256(bytes(organization))] != address(0)) {
            revert OrganizationTaken(organization);
        }
        _checkRoles(roles);
        if (_accounts.length >= MAX_MEMBERS) revert TooManyMembers(MAX_MEMBERS);
    }

    function _addMember(address account, string memory organization, uint8 roles) private {
        _checkNewMember(account, organization, roles);
        uint8 index = uint8(_accounts.length);
        _accounts.push(account);
        _members[account] = Member({index: index, roles: roles, active: true});
        _organizations[account] = organization;
        _byOrganization[keccak256(bytes(organization))] = account;
        if (roles & ROLE_VALIDATOR != 0) _validatorMask |= uint48(1) << index;
        emit MemberAdded(account, organization, roles, index);
    }

    function _removeMember(address account) private {
        Member memory m = _requireMember(account);
        if (m.roles & ROLE_VALIDATOR != 0) {
            _checkThreshold(_threshold, _validatorCount() - 1);
            _validatorMask &= ~(uint48(1) << m.index);
        }
        string memory organization = _organizations[account];
        delete _byOrganization[keccak256(bytes(organization))];
        delete _organizations[account];
        _members[account].active = false;
        _members[account].roles = 0;
        emit MemberRemoved(account, organization);
    }

    function _setRoles(address account, uint8 roles) private {
        Member memory m = _requireMember(account);
        _checkRoles(roles);
        uint48 bit = uint48(1) << m.index;
        if (roles & ROLE_VALIDATOR != 0) {
            _validatorMask |= bit;
        } else if (m.roles & ROLE_VALIDATOR != 0) {
            _checkThreshold(_threshold, _validatorCount() - 1);
            _validatorMask &= ~bit;
        }
        _members[account].roles = roles;
        emit RolesChanged(account, m.roles, roles);
    }

    function _setThreshold(uint8 threshold_) private {
        _checkThreshold(threshold_, _validatorCount());
        emit ThresholdChanged(_threshold, threshold_);
        _threshold = threshold_;
    }

    function _validatorCount() private view returns (uint256) {
        return _popcount(_validatorMask);
    }

    function _accountsIn(uint48 mask) private view returns (address[] memory list) {
        list = new address[](_popcount(mask));
        uint256 n = 0;
        for (uint256 i = 0; mask != 0; ++i) {
            if (mask & 1 != 0) list[n++] = _accounts[i];
            mask >>= 1;
        }
    }

    // ------------------------------------------------------------------ internals: proposals

    function _newProposal(ProposalKind kind) private returns (Proposal storage p) {
        _requireRole(msg.sender, ROLE_VALIDATOR);
        uint256 id = ++_proposalCount;
        p = _proposals[id];
        p.kind = kind;
        p.proposer = msg.sender;
    }

    function _open(Proposal storage p) private returns (uint256 id) {
        id = _proposalCount;
        emit ProposalCreated(id, msg.sender, p.kind, p.account, p.certId);
        p.approvalMask = uint48(1) << _members[msg.sender].index;
        _tally(id, p);
    }

    function _openProposal(uint256 proposalId) private view returns (Proposal storage p) {
        if (proposalId == 0 || proposalId > _proposalCount) revert UnknownProposal(proposalId);
        p = _proposals[proposalId];
        if (p.executed || p.cancelled) revert ProposalClosed(proposalId);
    }

    function _tally(uint256 id, Proposal storage p) private {
        uint8 approvals = _popcount(p.approvalMask & _validatorMask);
        emit ProposalApproved(id, msg.sender, approvals);
        if (approvals >= _threshold) _execute(id, p);
    }

    function _execute(uint256 id, Proposal storage p) private {
        p.executed = true;
        ProposalKind kind = p.kind;
        if (kind == ProposalKind.AddMember) {
            _addMember(p.account, p.organization, p.roles);
        } else if (kind == ProposalKind.RemoveMember) {
            _removeMember(p.account);
        } else if (kind == ProposalKind.SetRoles) {
            _setRoles(p.account, p.roles);
        } else if (kind == ProposalKind.SetThreshold) {
            _setThreshold(p.threshold);
        } else if (kind == ProposalKind.Revoke) {
            _revoke(p.certId, p.reason);
        } else if (kind == ProposalKind.Suspend) {
            _suspend(p.certId);
        } else {
            _resume(p.certId);
        }
        emit ProposalExecuted(id);
    }

    function _popcount(uint48 x) private pure returns (uint8) {
        uint256 v = x;
        v = v - ((v >> 1) & 0x555555555555);
        v = (v & 0x333333333333) + ((v >> 2) & 0x333333333333);
        v = (v + (v >> 4)) & 0x0f0f0f0f0f0f;
        return uint8((v * 0x010101010101) >> 40);
    }
}
