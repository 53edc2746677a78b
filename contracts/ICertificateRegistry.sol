// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title DPKI certificate registry
/// @notice A consortium of members (vendors, operators, CAs) records X.509 certificates on a
/// permissioned ledger. A certificate is identified by the SHA-256 of its DER encoding. A
/// SUBMITTER member submits it with its DER; VALIDATOR members re-verify it off-chain from the
/// bytes in the submission event and endorse or reject it; at `threshold()` distinct
/// endorsements it becomes Active. Relying parties trust a certificate because `isValid`
/// says so, not because of a CA chain.
/// @dev Membership, roles and the threshold change only by a proposal approved by a quorum
/// (the threshold) of validators. There is no owner. Every state change emits an event that
/// carries what an indexer needs to rebuild the state from logs alone.
interface ICertificateRegistry {
    // ------------------------------------------------------------------ types

    /// @notice Lifecycle of a certificate. `None` means never submitted. "Expired" is not a
    /// status: it is derived from `notAfter` and the chain's time.
    enum Status {
        None,
        Pending,
        Active,
        Suspended,
        Revoked,
        Superseded,
        Rejected
    }

    /// @notice What a governance proposal does when it executes.
    enum ProposalKind {
        AddMember,
        RemoveMember,
        SetRoles,
        SetThreshold,
        Revoke,
        Suspend,
        Resume
    }

    /// @notice A certificate as a submitter presents it. The registry computes the id as
    /// sha256(der); validators check that the other fields agree with the DER.
    /// @param der The DER encoding of the X.509 certificate.
    /// @param notBefore notBefore as unix seconds.
    /// @param notAfter notAfter as unix seconds (253402300799 for 99991231235959Z, "no expiry").
    /// @param keyHash sha256 of the DER SubjectPublicKeyInfo.
    /// @param orgHash sha256 of the subject organization (NFC, trimmed), zero when absent.
    struct Submission {
        bytes der;
        uint40 notBefore;
        uint40 notAfter;
        bytes32 keyHash;
        bytes32 orgHash;
    }

    /// @notice The state of one certificate as relying parties read it.
    /// @param status Current status.
    /// @param submitter The member that submitted it.
    /// @param notBefore Start of the validity window (unix seconds).
    /// @param notAfter End of the validity window (unix seconds).
    /// @param updatedAt Block time of the last status change (submission, activation,
    /// revocation, ...).
    /// @param endorsements Number of distinct validators that endorsed it.
    /// @param rejections Number of distinct validators that rejected it.
    /// @param reason RFC 5280 CRLReason when revoked; the validators' reason code when rejected.
    /// @param replaces The certificate this one renews (zero when it is not a renewal).
    struct CertificateStatus {
        Status status;
        address submitter;
        uint40 notBefore;
        uint40 notAfter;
        uint40 updatedAt;
        uint8 endorsements;
        uint8 rejections;
        uint8 reason;
        bytes32 replaces;
    }

    /// @notice A consortium member.
    /// @param account The member's address; it signs the member's transactions.
    /// @param organization The member's organization name, unique among members.
    /// @param roles Bit set of ROLE_VALIDATOR (1) and ROLE_SUBMITTER (2).
    /// @param index Stable index of the member (bit position in endorsement sets).
    struct MemberInfo {
        address account;
        string organization;
        uint8 roles;
        uint8 index;
    }

    /// @notice A governance proposal.
    struct ProposalInfo {
        ProposalKind kind;
        address proposer;
        bool executed;
        bool cancelled;
        uint8 approvals;
        address account;
        uint8 roles;
        uint8 threshold;
        bytes32 certId;
        uint8 reason;
        string organization;
    }

    // ------------------------------------------------------------------ events

    /// @notice A member joined the consortium (at deployment or by proposal).
    event MemberAdded(address indexed account, string organization, uint8 roles, uint8 index);

    /// @notice A member left the consortium.
    event MemberRemoved(address indexed account, string organization);

    /// @notice A member's roles changed.
    event RolesChanged(address indexed account, uint8 previousRoles, uint8 roles);

    /// @notice The endorsement threshold (and governance quorum) changed.
    event ThresholdChanged(uint8 previousThreshold, uint8 threshold);

    /// @notice A validator opened a governance proposal (the proposer's approval counts).
    event ProposalCreated(
        uint256 indexed proposalId,
        address indexed proposer,
        ProposalKind kind,
        address account,
        bytes32 certId
    );

    /// @notice A validator approved a proposal; `approvals` counts current validators only.
    event ProposalApproved(uint256 indexed proposalId, address indexed validator, uint8 approvals);

    /// @notice A proposal reached its quorum and took effect.
    event ProposalExecuted(uint256 indexed proposalId);

    /// @notice The proposer withdrew a proposal.
    event ProposalCancelled(uint256 indexed proposalId);

    /// @notice A certificate was submitted; the DER is in the event so that validators and
    /// indexers take the bytes from the ledger.
    /// @param replaces The certificate it renews, or zero.
    event CertificateSubmitted(
        bytes32 indexed certId,
        address indexed submitter,
        bytes32 indexed keyHash,
        bytes32 orgHash,
        uint40 notBefore,
        uint40 notAfter,
        bytes32 replaces,
        bytes der
    );

    /// @notice A validator endorsed a certificate; `status` is the status after it (Active
    /// when this endorsement reached the threshold).
    event CertificateEndorsed(
        bytes32 indexed certId,
        address indexed validator,
        uint8 endorsements,
        Status status
    );

    /// @notice A validator rejected a certificate with a reason code (DPKI policy code);
    /// `status` is the status after it (Rejected when the threshold can no longer be reached).
    event CertificateRejected(
        bytes32 indexed certId,
        address indexed validator,
        uint8 reasonCode,
        uint8 rejections,
        Status status
    );

    /// @notice A status changed other than by an endorsement or rejection vote: revoked,
    /// suspended, resumed or superseded by a renewal.
    /// @param actor The member that made the change (for a quorum decision: the validator
    /// whose approval executed it; for supersession: the validator that activated the renewal).
    /// @param reason RFC 5280 CRLReason for revocations; 6 (certificateHold) for suspension.
    event CertificateStatusChanged(
        bytes32 indexed certId,
        address indexed actor,
        Status previous,
        Status status,
        uint8 reason
    );

    // ------------------------------------------------------------------ errors

    /// @notice `account` is not a current member.
    error NotAMember(address account);
    /// @notice `account` lacks the VALIDATOR role.
    error NotAValidator(address account);
    /// @notice `account` lacks the SUBMITTER role.
    error NotASubmitter(address account);
    /// @notice `account` is already a member.
    error AlreadyAMember(address account);
    /// @notice Another member already uses this organization name.
    error OrganizationTaken(string organization);
    /// @notice Organization names are 1..64 bytes.
    error InvalidOrganization(string organization);
    /// @notice Roles must be a non-empty subset of VALIDATOR|SUBMITTER.
    error InvalidRoles(uint8 roles);
    /// @notice The threshold must be between 1 and the number of validators.
    error InvalidThreshold(uint8 threshold, uint256 validators);
    /// @notice The registry holds at most `max` members over its lifetime.
    error TooManyMembers(uint256 max);
    /// @notice The zero address cannot be a member.
    error ZeroAddress();
    /// @notice No proposal has this id.
    error UnknownProposal(uint256 proposalId);
    /// @notice The proposal was already executed or cancelled.
    error ProposalClosed(uint256 proposalId);
    /// @notice This validator already approved the proposal.
    error AlreadyApproved(uint256 proposalId, address validator);
    /// @notice Only the proposer can cancel a proposal.
    error NotProposer(uint256 proposalId, address account);
    /// @notice The proposal has `approvals` approvals by current validators; it needs `threshold`.
    error QuorumNotReached(uint256 proposalId, uint8 approvals, uint8 threshold);
    /// @notice A certificate with this id is already on the ledger.
    error CertificateAlreadyRegistered(bytes32 certId);
    /// @notice No certificate with this id is on the ledger.
    error UnknownCertificate(bytes32 certId);
    /// @notice The certificate is in `status`, where this operation is not allowed.
    error InvalidStatus(bytes32 certId, Status status);
    /// @notice This validator already endorsed or rejected the certificate.
    error AlreadyVoted(bytes32 certId, address validator);
    /// @notice Only the submitting member (or a validator quorum) can do this.
    error NotCertificateOwner(bytes32 certId, address account);
    /// @notice notBefore must be before notAfter.
    error InvalidValidity(uint40 notBefore, uint40 notAfter);
    /// @notice The DER is empty.
    error EmptyCertificate();
    /// @notice Not an RFC 5280 CRLReason usable with revoke (certificateHold: use suspend).
    error InvalidRevocationReason(uint8 reason);
    /// @notice An empty batch.
    error EmptyBatch();
    /// @notice Parallel arrays of different lengths.
    error LengthMismatch(uint256 expected, uint256 got);

    // ------------------------------------------------------------------ certificates

    /// @notice Submit a certificate; it is Pending until `threshold()` validators endorse it.
    /// @dev Caller must be a SUBMITTER. Reverts with CertificateAlreadyRegistered for a
    /// certificate already on the ledger (whatever its status).
    /// @return certId sha256 of the DER.
    function submit(Submission calldata submission) external returns (bytes32 certId);

    /// @notice Submit many certificates in one transaction (all or nothing).
    function submitBatch(Submission[] calldata submissions) external returns (bytes32[] memory);

    /// @notice Submit a certificate that renews `oldCertId`; the old one becomes Superseded
    /// when the new one activates.
    /// @dev Caller must be the old certificate's submitter; the old one must be Active or
    /// Suspended.
    function renew(bytes32 oldCertId, Submission calldata submission) external returns (bytes32);

    /// @notice Endorse a Pending certificate after verifying it off-chain.
    function endorse(bytes32 certId) external;

    /// @notice Endorse many Pending certificates in one transaction.
    /// @dev A certificate that another validator's vote decided (Active, Rejected, ...) while
    /// this transaction was in flight is skipped without an event: with M of N validators
    /// endorsing concurrently that is the normal case, not an error. Unknown certificates and
    /// a second vote by the same validator still revert the whole batch.
    function endorseBatch(bytes32[] calldata certIds) external;

    /// @notice Reject a Pending certificate with a DPKI policy reason code.
    function reject(bytes32 certId, uint8 reasonCode) external;

    /// @notice Reject many Pending certificates, one reason code each; decided certificates
    /// are skipped as in `endorseBatch`.
    function rejectBatch(bytes32[] calldata certIds, uint8[] calldata reasonCodes) external;

    /// @notice Revoke a certificate with an RFC 5280 CRLReason. Only its submitter; a
    /// validator quorum revokes through `proposeRevoke`.
    function revoke(bytes32 certId, uint8 reason) external;

    /// @notice Suspend an Active certificate (X.1409 Annex A.1). Only its submitter.
    function suspend(bytes32 certId) external;

    /// @notice Resume a Suspended certificate. Only its submitter.
    function resume(bytes32 certId) external;

    // ------------------------------------------------------------------ governance

    /// @notice Propose a new member. Caller must be a validator; its approval counts.
    function proposeAddMember(address account, string calldata organization, uint8 roles)
        external
        returns (uint256 proposalId);

    /// @notice Propose removing a member.
    function proposeRemoveMember(address account) external returns (uint256 proposalId);

    /// @notice Propose new roles for a member.
    function proposeSetRoles(address account, uint8 roles) external returns (uint256 proposalId);

    /// @notice Propose a new endorsement threshold (also the governance quorum).
    function proposeThreshold(uint8 threshold) external returns (uint256 proposalId);

    /// @notice Propose revoking any certificate by validator quorum.
    function proposeRevoke(bytes32 certId, uint8 reason) external returns (uint256 proposalId);

    /// @notice Propose suspending any Active certificate by validator quorum.
    function proposeSuspend(bytes32 certId) external returns (uint256 proposalId);

    /// @notice Propose resuming any Suspended certificate by validator quorum.
    function proposeResume(bytes32 certId) external returns (uint256 proposalId);

    /// @notice Approve a proposal; it executes when approvals by current validators reach
    /// the threshold. A removed validator's earlier approval no longer counts.
    function approve(uint256 proposalId) external;

    /// @notice Withdraw a proposal (proposer only).
    function cancel(uint256 proposalId) external;

    /// @notice Execute a proposal whose approvals already reach the threshold (after the
    /// threshold was lowered). Any validator may call it.
    function execute(uint256 proposalId) external;

    // ------------------------------------------------------------------ views

    /// @notice True only when the certificate is Active and the chain's time is inside
    /// [notBefore, notAfter].
    function isValid(bytes32 certId) external view returns (bool);

    /// @notice The full record of a certificate (status None when unknown).
    function statusOf(bytes32 certId) external view returns (CertificateStatus memory);

    /// @notice The validators that endorsed a certificate.
    function endorsersOf(bytes32 certId) external view returns (address[] memory);

    /// @notice The validators that rejected a certificate.
    function rejectersOf(bytes32 certId) external view returns (address[] memory);

    /// @notice Whether `validator` (a current member) endorsed or rejected `certId`.
    function hasVoted(bytes32 certId, address validator) external view returns (bool);

    /// @notice The latest certificate submitted for a public key (sha256 of the SPKI DER).
    function latestForKey(bytes32 keyHash) external view returns (bytes32 certId);

    /// @notice The renewal that superseded `certId` (set when the renewal activated), or zero.
    function replacedBy(bytes32 certId) external view returns (bytes32);

    /// @notice The current members.
    function members() external view returns (MemberInfo[] memory);

    /// @notice One member (roles 0 when `account` is not a member).
    function memberOf(address account) external view returns (MemberInfo memory);

    /// @notice The member whose organization is `organization` (zero address when none).
    function memberByOrganization(string calldata organization) external view returns (address);

    /// @notice Endorsements needed for activation and approvals needed for governance.
    function threshold() external view returns (uint8);

    /// @notice Number of current validators.
    function validatorCount() external view returns (uint256);

    /// @notice Number of proposals ever made (ids are 1..proposalCount()).
    function proposalCount() external view returns (uint256);

    /// @notice A proposal.
    function proposal(uint256 proposalId) external view returns (ProposalInfo memory);

    /// @notice Whether `validator` approved `proposalId`.
    function hasApproved(uint256 proposalId, address validator) external view returns (bool);

    /// @notice Semantic version of this implementation.
    function version() external pure returns (string memory);
}
