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
        Resume,
        AuthorizeIssuer,
        DeauthorizeIssuer
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
    /// @param kind What it does.
    /// @param proposer The validator that opened it.
    /// @param executed Whether it took effect.
    /// @param cancelled Whether its proposer withdrew it.
    /// @param approvals Approvals by current validators.
    /// @param account The member it adds, removes or changes (AddMember, RemoveMember,
    /// SetRoles; for (De)AuthorizeIssuer the member whose organization the issuer vouches for).
    /// @param roles Roles for AddMember and SetRoles.
    /// @param threshold The new threshold for SetThreshold.
    /// @param certId The certificate of Revoke, Suspend, Resume and (De)AuthorizeIssuer.
    /// @param reason The CRLReason of Revoke.
    /// @param organization The organization of AddMember.
    /// @param deadline Block time after which it can no longer be approved or executed.
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
        uint40 deadline;
    }

    // ------------------------------------------------------------------ events

    /// @notice A member joined the consortium (at deployment or by proposal).
    event MemberAdded(address indexed account, string organization, uint8 roles, uint8 index);

    /// @notice A member left the consortium.
    event MemberRemoved(address indexed account, string organization);

    /// @notice A member moved to a new key: `account` takes over index, roles, organization
    /// and certificates of `previousAccount`, which can never be a member again.
    event MemberKeyRotated(address indexed previousAccount, address indexed account, uint8 index);

    /// @notice A member's roles changed.
    event RolesChanged(address indexed account, uint8 previousRoles, uint8 roles);

    /// @notice The endorsement threshold (and governance quorum) changed.
    event ThresholdChanged(uint8 previousThreshold, uint8 threshold);

    /// @notice A validator opened a governance proposal (the proposer's approval counts). It
    /// carries every field of the proposal, so that proposals are rebuilt from logs alone.
    event ProposalCreated(
        uint256 indexed proposalId,
        address indexed proposer,
        ProposalKind kind,
        address account,
        bytes32 certId,
        string organization,
        uint8 roles,
        uint8 threshold,
        uint8 reason,
        uint40 deadline
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

    /// @notice The issuing CA certificate `caCertId` was authorised (`authorized` true) or no
    /// longer authorised to vouch for certificates naming the organization `orgHash` of
    /// `member`. `actor` is that member, or the validator whose approval executed a quorum
    /// decision.
    event IssuerAuthorizationChanged(
        bytes32 indexed caCertId,
        bytes32 indexed orgHash,
        address indexed member,
        address actor,
        bool authorized
    );

    /// @notice The public key `keyHash` (sha256 of the SPKI DER) of a certificate revoked for
    /// keyCompromise is on the ledger's list of compromised keys.
    event KeyCompromised(bytes32 indexed keyHash, bytes32 indexed certId, address actor);

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
    /// @notice The organization name is not in canonical form: the byte at `offset` starts
    /// white space other than one inner U+0020, a control character, an invisible character
    /// or a combining mark (names are NFC without decomposed marks; the CLI normalizes).
    error OrganizationNotCanonical(string organization, uint256 offset);
    /// @notice `account` handed its index to a new key; it can never be a member again.
    error AccountRetired(address account);
    /// @notice The certificate names (`orgHash`) another member's organization, and
    /// `submitter` owns no issuer that member authorised for it.
    error NotEntitled(bytes32 certId, address submitter, bytes32 orgHash);
    /// @notice A validator quorum suspended the certificate: only a quorum resumes it, and it
    /// cannot be renewed meanwhile.
    error HeldByQuorum(bytes32 certId);
    /// @notice The certificate's submitter is no longer a member with the SUBMITTER role: its
    /// submission can never become Active.
    error SubmitterNotActive(bytes32 certId, address submitter);
    /// @notice The current validators' votes neither activate nor reject the certificate yet.
    error CertificateUndecided(bytes32 certId, uint8 endorsements, uint8 rejections);
    /// @notice The proposal's deadline passed.
    error ProposalExpired(uint256 proposalId, uint40 deadline);
    /// @notice The issuer authorisation is already in the wanted state.
    error AuthorizationUnchanged(bytes32 caCertId, bytes32 orgHash, bool authorized);
    /// @notice The DER does not parse as far as the SubjectPublicKeyInfo.
    error MalformedCertificate(bytes32 certId);
    /// @notice The certificate is not revoked for keyCompromise (reason 1).
    error NotRevokedForKeyCompromise(bytes32 certId);
    /// @notice A vote's anchor block is not on this chain (a reorganization replaced it), is
    /// not yet mined, or is more than 256 blocks old: what the vote decided was read elsewhere.
    error StaleAnchor(uint256 anchorBlock, bytes32 anchorHash);

    // ------------------------------------------------------------------ certificates

    /// @notice Submit a certificate; it is Pending until `threshold()` current validators
    /// endorse it.
    /// @dev Caller must be a SUBMITTER. Entitlement: when `orgHash` names another current
    /// member's organization, the caller must own an issuer that member (or a quorum)
    /// authorised for it, else NotEntitled. An id that is Rejected (by validators, or
    /// withdrawn by its submitter) may be registered again; any other existing id reverts
    /// with CertificateAlreadyRegistered.
    /// @param submission The certificate and the fields validators check against its DER.
    /// @return certId sha256 of the DER.
    function submit(Submission calldata submission) external returns (bytes32 certId);

    /// @notice Submit many certificates in one transaction.
    /// @dev An item already registered (by anyone, and not Rejected) is skipped without an
    /// event, so that a copy sent first by another member does not revert the batch; its id
    /// is still returned. Other errors revert the whole batch.
    /// @param submissions The certificates.
    /// @return certIds sha256 of each DER, in order.
    function submitBatch(Submission[] calldata submissions)
        external
        returns (bytes32[] memory certIds);

    /// @notice Submit a certificate that renews `oldCertId`; the old one becomes Superseded
    /// when the new one activates.
    /// @dev Caller must be the old certificate's submitter; the old one must be Active or
    /// Suspended by its submitter (not HeldByQuorum).
    /// @param oldCertId The certificate being renewed.
    /// @param submission The renewal.
    /// @return certId sha256 of the renewal's DER.
    function renew(bytes32 oldCertId, Submission calldata submission)
        external
        returns (bytes32 certId);

    /// @notice Endorse a Pending certificate after verifying it off-chain.
    /// @dev Only endorsements by current validators count; it activates at `threshold()` of
    /// them, and only while its submitter is still an active SUBMITTER (else
    /// SubmitterNotActive).
    /// @param certId The certificate.
    function endorse(bytes32 certId) external;

    /// @notice Endorse many Pending certificates in one transaction.
    /// @dev A certificate that is no longer Pending, or whose submitter is no longer an
    /// active SUBMITTER, is skipped without an event: with M of N validators endorsing
    /// concurrently that is the normal case, not an error. Unknown certificates and a second
    /// vote by the same validator still revert the whole batch.
    /// @param certIds The certificates.
    function endorseBatch(bytes32[] calldata certIds) external;

    /// @notice `endorseBatch`, counted only on the chain its validator read.
    /// @dev The vote names the newest block its decision read; on a chain without that block
    /// (or when it is more than 256 blocks old) it reverts with StaleAnchor. Validators may so
    /// vote on submissions before they are confirmed: a fork that replaces the block cannot
    /// turn the vote into one for another member's copy of the certificate, or into one made
    /// on ledger facts (issuers, compromised keys, members) the validator never saw.
    /// @param certIds The certificates.
    /// @param anchorBlock The number of the newest block the decision read.
    /// @param anchorHash That block's hash.
    function endorseBatchAt(bytes32[] calldata certIds, uint256 anchorBlock, bytes32 anchorHash)
        external;

    /// @notice Reject a Pending certificate with a DPKI policy reason code; it is Rejected
    /// once the current validators that did not reject it can no longer reach the threshold.
    /// @param certId The certificate.
    /// @param reasonCode The DPKI policy reason code.
    function reject(bytes32 certId, uint8 reasonCode) external;

    /// @notice Reject many Pending certificates, one reason code each; decided certificates
    /// are skipped as in `endorseBatch`.
    /// @param certIds The certificates.
    /// @param reasonCodes One DPKI policy reason code per certificate.
    function rejectBatch(bytes32[] calldata certIds, uint8[] calldata reasonCodes) external;

    /// @notice `rejectBatch`, counted only on the chain its validator read (see
    /// `endorseBatchAt`).
    /// @param certIds The certificates.
    /// @param reasonCodes One DPKI policy reason code per certificate.
    /// @param anchorBlock The number of the newest block the decision read.
    /// @param anchorHash That block's hash.
    function rejectBatchAt(
        bytes32[] calldata certIds,
        uint8[] calldata reasonCodes,
        uint256 anchorBlock,
        bytes32 anchorHash
    ) external;

    /// @notice Decide a Pending certificate from the votes of the current validators, for a
    /// certificate left undecided by membership or threshold changes. Any validator.
    /// @dev Active when current endorsements reach the threshold and the submitter is still
    /// an active SUBMITTER; Rejected (reason SUBMITTER_NOT_ACTIVE) when the submitter is
    /// not; Rejected when the current validators that did not reject it cannot reach the
    /// threshold; otherwise CertificateUndecided. Emits CertificateStatusChanged.
    /// @param certId The certificate.
    function settle(bytes32 certId) external;

    /// @notice Withdraw one's own Pending certificate: it becomes Rejected (reason WITHDRAWN)
    /// and its id can be registered again by a member entitled to it.
    /// @param certId The certificate.
    function withdraw(bytes32 certId) external;

    /// @notice Revoke one's own Active, Suspended or Superseded certificate with an RFC 5280
    /// CRLReason (a Pending one is withdrawn instead). Caller must be its submitter with the
    /// SUBMITTER role; a validator quorum revokes any certificate through `proposeRevoke`.
    /// @param certId The certificate.
    /// @param reason RFC 5280 CRLReason (0-5, 9, 10).
    function revoke(bytes32 certId, uint8 reason) external;

    /// @notice Suspend one's own Active certificate (X.1409 Annex A.1).
    /// @param certId The certificate.
    function suspend(bytes32 certId) external;

    /// @notice Resume one's own Suspended certificate; HeldByQuorum when a quorum suspended it.
    /// @param certId The certificate.
    function resume(bytes32 certId) external;

    /// @notice Put the key of a certificate revoked for keyCompromise on the ledger's list of
    /// compromised keys. Anyone may call it: it only records what the ledger already says.
    /// @param der The certificate's DER (its sha256 is the certificate id).
    /// @return keyHash sha256 of its SubjectPublicKeyInfo DER.
    function reportKeyCompromise(bytes calldata der) external returns (bytes32 keyHash);

    /// @notice Authorise the Active CA certificate `caCertId` (owned by another member) to
    /// vouch for certificates naming the caller's organization. By default a CA vouches only
    /// for its owner's organization.
    /// @param caCertId The issuing CA certificate.
    function authorizeIssuer(bytes32 caCertId) external;

    /// @notice Withdraw the caller's authorisation of `caCertId`.
    /// @param caCertId The issuing CA certificate.
    function deauthorizeIssuer(bytes32 caCertId) external;

    // ------------------------------------------------------------------ membership

    /// @notice Move the caller's membership (index, roles, organization, certificates and
    /// votes) to a new key. The old account can never be a member again.
    /// @param account The new key's address; it must never have been a member.
    function rotateKey(address account) external;

    // ------------------------------------------------------------------ governance

    /// @notice Propose a new member. Caller must be a validator; its approval counts.
    /// @dev An account that was a member before gets its old index back (its old votes are
    /// its own); an account that handed its index to a new key is refused (AccountRetired).
    /// @param account The new member's address.
    /// @param organization Its organization name in canonical form (see
    /// OrganizationNotCanonical), unique among members.
    /// @param roles Bit set of ROLE_VALIDATOR and ROLE_SUBMITTER.
    /// @return proposalId The new proposal.
    function proposeAddMember(address account, string calldata organization, uint8 roles)
        external
        returns (uint256 proposalId);

    /// @notice Propose removing a member.
    /// @param account The member.
    /// @return proposalId The new proposal.
    function proposeRemoveMember(address account) external returns (uint256 proposalId);

    /// @notice Propose new roles for a member.
    /// @param account The member.
    /// @param roles Bit set of ROLE_VALIDATOR and ROLE_SUBMITTER.
    /// @return proposalId The new proposal.
    function proposeSetRoles(address account, uint8 roles) external returns (uint256 proposalId);

    /// @notice Propose a new endorsement threshold (also the governance quorum).
    /// @param threshold The new threshold (1..validators).
    /// @return proposalId The new proposal.
    function proposeThreshold(uint8 threshold) external returns (uint256 proposalId);

    /// @notice Propose revoking any certificate by validator quorum.
    /// @param certId The certificate.
    /// @param reason RFC 5280 CRLReason (0-5, 9, 10).
    /// @return proposalId The new proposal.
    function proposeRevoke(bytes32 certId, uint8 reason) external returns (uint256 proposalId);

    /// @notice Propose suspending an Active certificate, or one its submitter suspended, by
    /// validator quorum; only a quorum resumes it.
    /// @param certId The certificate.
    /// @return proposalId The new proposal.
    function proposeSuspend(bytes32 certId) external returns (uint256 proposalId);

    /// @notice Propose resuming any Suspended certificate by validator quorum.
    /// @param certId The certificate.
    /// @return proposalId The new proposal.
    function proposeResume(bytes32 certId) external returns (uint256 proposalId);

    /// @notice Propose authorising the Active CA certificate `caCertId` to vouch for
    /// certificates naming `member`'s organization.
    /// @param caCertId The issuing CA certificate.
    /// @param member The member whose organization it may vouch for.
    /// @return proposalId The new proposal.
    function proposeAuthorizeIssuer(bytes32 caCertId, address member)
        external
        returns (uint256 proposalId);

    /// @notice Propose withdrawing an issuer authorisation.
    /// @param caCertId The issuing CA certificate.
    /// @param member The member whose organization it vouched for.
    /// @return proposalId The new proposal.
    function proposeDeauthorizeIssuer(bytes32 caCertId, address member)
        external
        returns (uint256 proposalId);

    /// @notice Approve a proposal; it executes when approvals by current validators reach
    /// the threshold. A removed or demoted validator's approval no longer counts.
    /// @param proposalId The proposal.
    function approve(uint256 proposalId) external;

    /// @notice Withdraw a proposal (its proposer, while a validator).
    /// @param proposalId The proposal.
    function cancel(uint256 proposalId) external;

    /// @notice Execute a proposal whose approvals already reach the threshold (after the
    /// threshold was lowered). Any validator may call it before the deadline.
    /// @param proposalId The proposal.
    function execute(uint256 proposalId) external;

    // ------------------------------------------------------------------ views

    /// @notice True only when the certificate is Active and the chain's time is inside
    /// [notBefore, notAfter].
    /// @param certId The certificate.
    /// @return valid Whether relying parties may trust it now.
    function isValid(bytes32 certId) external view returns (bool valid);

    /// @notice The full record of a certificate (status None when unknown).
    /// @param certId The certificate.
    /// @return status Its record; `endorsements` and `rejections` count all votes cast.
    function statusOf(bytes32 certId) external view returns (CertificateStatus memory status);

    /// @notice The validators that endorsed a certificate.
    /// @param certId The certificate.
    /// @return validators Their current addresses.
    function endorsersOf(bytes32 certId) external view returns (address[] memory validators);

    /// @notice The validators that rejected a certificate.
    /// @param certId The certificate.
    /// @return validators Their current addresses.
    function rejectersOf(bytes32 certId) external view returns (address[] memory validators);

    /// @notice Whether the account with `validator`'s index endorsed or rejected `certId`
    /// (also after it was removed: a vote is cast once for good).
    /// @param certId The certificate.
    /// @param validator The account.
    /// @return voted Whether it voted.
    function hasVoted(bytes32 certId, address validator) external view returns (bool voted);

    /// @notice The latest certificate submitted for a public key. A submission moves it only
    /// from nothing, from the same member's certificate, or from one that is not Active or
    /// Suspended: another member cannot repoint a key with an unverified hash.
    /// @param keyHash sha256 of the SPKI DER.
    /// @return certId The certificate (zero when none).
    function latestForKey(bytes32 keyHash) external view returns (bytes32 certId);

    /// @notice The certificate revoked for keyCompromise that put `keyHash` on the list of
    /// compromised keys (zero when the key is not on it).
    /// @param keyHash sha256 of the SPKI DER.
    /// @return certId The revoked certificate.
    function compromisedKey(bytes32 keyHash) external view returns (bytes32 certId);

    /// @notice Whether `caCertId` may vouch for certificates naming the organization
    /// `orgHash` (sha256 of the canonical name) without being owned by its member.
    /// @param caCertId The issuing CA certificate.
    /// @param orgHash sha256 of the organization name.
    /// @return authorized Whether an authorisation is on the ledger.
    function isIssuerAuthorized(bytes32 caCertId, bytes32 orgHash)
        external
        view
        returns (bool authorized);

    /// @notice Whether a quorum holds the certificate suspended (only a quorum resumes it).
    /// @param certId The certificate.
    /// @return held Whether it is held.
    function heldByQuorum(bytes32 certId) external view returns (bool held);

    /// @notice The renewal that superseded `certId` (set when the renewal activated), or zero.
    /// @param certId The certificate.
    /// @return renewal The renewal.
    function replacedBy(bytes32 certId) external view returns (bytes32 renewal);

    /// @notice The current members.
    /// @return list One entry per current member, by index.
    function members() external view returns (MemberInfo[] memory list);

    /// @notice One member (roles 0 when `account` is not a member).
    /// @param account The address.
    /// @return info The member.
    function memberOf(address account) external view returns (MemberInfo memory info);

    /// @notice The member whose organization is `organization` (zero address when none).
    /// @param organization The name, compared after hashing its bytes (canonical names).
    /// @return account The member.
    function memberByOrganization(string calldata organization)
        external
        view
        returns (address account);

    /// @notice Endorsements needed for activation and approvals needed for governance.
    /// @return quorum The threshold.
    function threshold() external view returns (uint8 quorum);

    /// @notice Number of current validators.
    /// @return count The number.
    function validatorCount() external view returns (uint256 count);

    /// @notice Number of proposals ever made (ids are 1..proposalCount()).
    /// @return count The number.
    function proposalCount() external view returns (uint256 count);

    /// @notice A proposal.
    /// @param proposalId The proposal.
    /// @return info The proposal.
    function proposal(uint256 proposalId) external view returns (ProposalInfo memory info);

    /// @notice Whether `validator`, a current validator, approved `proposalId`.
    /// @param proposalId The proposal.
    /// @param validator The account.
    /// @return approved Whether its approval counts.
    function hasApproved(uint256 proposalId, address validator)
        external
        view
        returns (bool approved);

    /// @notice Semantic version of this implementation.
    /// @return semver The version.
    function version() external pure returns (string memory semver);
}
