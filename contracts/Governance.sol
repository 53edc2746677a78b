// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ICertificateRegistry} from "./ICertificateRegistry.sol";
import {CertificateLifecycle} from "./CertificateLifecycle.sol";

/// @title Governance: proposals that a quorum of current validators executes
/// @dev Approvals are bits at the approvers' indexes; only current validators' bits count,
/// when approving, executing and in views. A proposal expires `PROPOSAL_LIFETIME` after it
/// was opened, which bounds how long an approval of a validator that was demoted and later
/// promoted again can revive (its approval is its own decision, never another's). Only its
/// proposer, while a validator, can cancel it.
abstract contract Governance is CertificateLifecycle {
    uint40 public constant PROPOSAL_LIFETIME = 7 days;

    struct Proposal {
        ProposalKind kind;
        bool executed;
        bool cancelled;
        uint8 roles;
        uint8 threshold;
        uint8 reason;
        uint48 approvalMask;
        uint40 deadline;
        address proposer;
        address account;
        bytes32 certId;
        string organization;
    }

    mapping(uint256 proposalId => Proposal) internal _proposals;
    uint256 internal _proposalCount;

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
        _checkSuspendable(certId, true);
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
    function proposeAuthorizeIssuer(bytes32 caCertId, address member) external returns (uint256) {
        _requireMember(member);
        _requireStatus(caCertId, Status.Active);
        bytes32 orgHash = sha256(bytes(_organizations[member]));
        if (_authorized[caCertId][orgHash]) revert AuthorizationUnchanged(caCertId, orgHash, true);
        Proposal storage p = _newProposal(ProposalKind.AuthorizeIssuer);
        p.certId = caCertId;
        p.account = member;
        return _open(p);
    }

    /// @inheritdoc ICertificateRegistry
    function proposeDeauthorizeIssuer(bytes32 caCertId, address member)
        external
        returns (uint256)
    {
        _requireMember(member);
        bytes32 orgHash = sha256(bytes(_organizations[member]));
        if (!_authorized[caCertId][orgHash]) {
            revert AuthorizationUnchanged(caCertId, orgHash, false);
        }
        Proposal storage p = _newProposal(ProposalKind.DeauthorizeIssuer);
        p.certId = caCertId;
        p.account = member;
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
        _requireRole(msg.sender, ROLE_VALIDATOR);
        Proposal storage p = _openProposal(proposalId);
        if (p.proposer != msg.sender) revert NotProposer(proposalId, msg.sender);
        p.cancelled = true;
        emit ProposalCancelled(proposalId);
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
            organization: p.organization,
            deadline: p.deadline
        });
    }

    /// @inheritdoc ICertificateRegistry
    function hasApproved(uint256 proposalId, address validator) external view returns (bool) {
        return _isValidator(validator)
            && _proposals[proposalId].approvalMask & (uint48(1) << _members[validator].index) != 0;
    }

    // ------------------------------------------------------------------ internals

    function _newProposal(ProposalKind kind) private returns (Proposal storage p) {
        _requireRole(msg.sender, ROLE_VALIDATOR);
        uint256 id = ++_proposalCount;
        p = _proposals[id];
        p.kind = kind;
        p.proposer = msg.sender;
        p.deadline = uint40(block.timestamp) + PROPOSAL_LIFETIME;
    }

    function _open(Proposal storage p) private returns (uint256 id) {
        id = _proposalCount;
        emit ProposalCreated(
            id,
            msg.sender,
            p.kind,
            p.account,
            p.certId,
            p.organization,
            p.roles,
            p.threshold,
            p.reason,
            p.deadline
        );
        p.approvalMask = uint48(1) << _members[msg.sender].index;
        _tally(id, p);
    }

    function _openProposal(uint256 proposalId) private view returns (Proposal storage p) {
        if (proposalId == 0 || proposalId > _proposalCount) revert UnknownProposal(proposalId);
        p = _proposals[proposalId];
        if (p.executed || p.cancelled) revert ProposalClosed(proposalId);
        if (block.timestamp > p.deadline) revert ProposalExpired(proposalId, p.deadline);
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
            _suspend(p.certId, true);
        } else if (kind == ProposalKind.Resume) {
            _resume(p.certId, true);
        } else {
            _setAuthorization(p.certId, p.account, kind == ProposalKind.AuthorizeIssuer);
        }
        emit ProposalExecuted(id);
    }
}
