// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ICertificateRegistry} from "./ICertificateRegistry.sol";

/// @title Membership: members, roles, organization names and the threshold
/// @dev A member is an index (a bit position in 48-bit sets). An account keeps its index for
/// good: removed and added again it gets the same index back, so its earlier votes stay its
/// own and are never cast twice; `rotateKey` moves an index to a new account and retires the
/// old one. 48 indexes cover the registry's lifetime (key rotation does not use one up).
///
/// Organization names are unique on their canonical form, enforced here: the contract
/// accepts only names that are already canonical (see `_checkCanonical`), so byte-wise
/// uniqueness is uniqueness of the normalized name. The name's sha256 is the `orgHash`
/// certificates declare for their subject O.
abstract contract Membership is ICertificateRegistry {
    uint8 public constant ROLE_VALIDATOR = 1;
    uint8 public constant ROLE_SUBMITTER = 2;
    uint256 public constant MAX_MEMBERS = 48;
    uint256 internal constant MAX_ORGANIZATION_BYTES = 64;

    /// @dev `known`: the account holds an index (kept after removal); `retired`: it handed
    /// its index to a new key.
    struct Member {
        uint8 index;
        uint8 roles;
        bool active;
        bool known;
        bool retired;
    }

    mapping(address account => Member) internal _members;
    mapping(address account => string) internal _organizations;
    mapping(bytes32 orgHash => address account) internal _byOrganization;
    /// @dev The account that currently holds each index.
    address[] internal _accounts;
    /// @dev One slot, read once per batch: current validators, current submitters, threshold.
    uint48 internal _validatorMask;
    uint48 internal _submitterMask;
    uint8 internal _threshold;

    /// @inheritdoc ICertificateRegistry
    function rotateKey(address account) external {
        Member memory m = _requireMember(msg.sender);
        if (account == address(0)) revert ZeroAddress();
        if (_members[account].known) revert AlreadyAMember(account);
        string memory organization = _organizations[msg.sender];
        _members[account] = Member({
            index: m.index, roles: m.roles, active: true, known: true, retired: false
        });
        _members[msg.sender] = Member({
            index: m.index, roles: 0, active: false, known: true, retired: true
        });
        _accounts[m.index] = account;
        _organizations[account] = organization;
        delete _organizations[msg.sender];
        _byOrganization[sha256(bytes(organization))] = account;
        emit MemberKeyRotated(msg.sender, account, m.index);
    }

    // ------------------------------------------------------------------ internals

    function _requireMember(address account) internal view returns (Member memory m) {
        m = _members[account];
        if (!m.active) revert NotAMember(account);
    }

    function _requireRole(address account, uint8 role) internal view returns (uint8) {
        Member memory m = _requireMember(account);
        if (m.roles & role == 0) {
            if (role == ROLE_VALIDATOR) revert NotAValidator(account);
            revert NotASubmitter(account);
        }
        return m.index;
    }

    function _checkRoles(uint8 roles) internal pure {
        if (roles == 0 || roles & ~(ROLE_VALIDATOR | ROLE_SUBMITTER) != 0) {
            revert InvalidRoles(roles);
        }
    }

    function _checkThreshold(uint8 threshold_, uint256 validators) internal pure {
        if (threshold_ == 0 || threshold_ > validators) {
            revert InvalidThreshold(threshold_, validators);
        }
    }

    function _checkNewMember(address account, string memory organization, uint8 roles)
        internal
        view
    {
        if (account == address(0)) revert ZeroAddress();
        Member memory m = _members[account];
        if (m.active) revert AlreadyAMember(account);
        if (m.retired) revert AccountRetired(account);
        uint256 length = bytes(organization).length;
        if (length == 0 || length > MAX_ORGANIZATION_BYTES) {
            revert InvalidOrganization(organization);
        }
        _checkCanonical(organization);
        if (_byOrganization[sha256(bytes(organization))] != address(0)) {
            revert OrganizationTaken(organization);
        }
        _checkRoles(roles);
        if (!m.known && _accounts.length >= MAX_MEMBERS) revert TooManyMembers(MAX_MEMBERS);
    }

    /// @dev A canonical name has no white space but single inner U+0020 (none leading or
    /// trailing), no C0/C1 control character, no invisible format character (U+200B..U+200F,
    /// U+2060, U+FEFF) and no combining mark of the blocks NFD produces (U+0300..U+036F,
    /// U+1AB0..U+1AFF, U+1DC0..U+1DFF, U+20D0..U+20FF, U+FE20..U+FE2F) nor conjoining Hangul
    /// jamo (U+1100..U+11FF). NFC is not computable on-chain at a sensible cost; this subset
    /// refuses the decomposed and padded look-alikes of a name, and the CLI sends names NFC
    /// and trimmed. Bytes are UTF-8 as given; invalid UTF-8 cannot equal a valid name.
    function _checkCanonical(string memory organization) internal pure {
        bytes memory b = bytes(organization);
        uint256 n = b.length;
        for (uint256 i = 0; i < n; ++i) {
            uint8 c = uint8(b[i]);
            uint8 c1 = i + 1 < n ? uint8(b[i + 1]) : 0;
            uint8 c2 = i + 2 < n ? uint8(b[i + 2]) : 0;
            bool bad;
            if (c == 0x20) {
                bad = i == 0 || i == n - 1 || c1 == 0x20;
            } else if (c < 0x20 || c == 0x7f) {
                bad = true;
            } else if (c == 0xc2) {
                bad = c1 >= 0x80 && c1 <= 0xa0; // C1 controls, U+0085 NEL, U+00A0 NBSP
            } else if (c == 0xcc) {
                bad = true; // U+0300..U+033F
            } else if (c == 0xcd) {
                bad = c1 <= 0xaf; // U+0340..U+036F
            } else if (c == 0xe1) {
                bad = (c1 >= 0x84 && c1 <= 0x87) // U+1100..U+11FF
                    || (c1 == 0x9a && c2 == 0x80) // U+1680
                    || (c1 == 0xaa && c2 >= 0xb0) || c1 == 0xab // U+1AB0..U+1AFF
                    || (c1 == 0xb7 && c2 >= 0x80); // U+1DC0..U+1DFF
            } else if (c == 0xe2) {
                bad = (c1 == 0x80 && (c2 <= 0x8f || c2 == 0xa8 || c2 == 0xa9 || c2 == 0xaf))
                    || (c1 == 0x81 && (c2 == 0x9f || c2 == 0xa0)) // U+205F, U+2060
                    || (c1 == 0x83 && c2 >= 0x90); // U+20D0..U+20FF
            } else if (c == 0xe3) {
                bad = c1 == 0x80 && c2 == 0x80; // U+3000
            } else if (c == 0xef) {
                bad = (c1 == 0xbb && c2 == 0xbf) || (c1 == 0xb8 && c2 >= 0xa0 && c2 <= 0xaf);
            }
            if (bad) revert OrganizationNotCanonical(organization, i);
        }
    }

    function _addMember(address account, string memory organization, uint8 roles) internal {
        _checkNewMember(account, organization, roles);
        Member memory m = _members[account];
        uint8 index = m.index;
        if (!m.known) {
            index = uint8(_accounts.length);
            _accounts.push(account);
        }
        _members[account] =
            Member({index: index, roles: roles, active: true, known: true, retired: false});
        _organizations[account] = organization;
        _byOrganization[sha256(bytes(organization))] = account;
        _setMasks(index, roles);
        emit MemberAdded(account, organization, roles, index);
    }

    function _removeMember(address account) internal {
        Member memory m = _requireMember(account);
        if (m.roles & ROLE_VALIDATOR != 0) _checkThreshold(_threshold, _validatorCount() - 1);
        _setMasks(m.index, 0);
        string memory organization = _organizations[account];
        delete _byOrganization[sha256(bytes(organization))];
        delete _organizations[account];
        _members[account].active = false;
        _members[account].roles = 0;
        emit MemberRemoved(account, organization);
    }

    function _setRoles(address account, uint8 roles) internal {
        Member memory m = _requireMember(account);
        _checkRoles(roles);
        if (m.roles & ROLE_VALIDATOR != 0 && roles & ROLE_VALIDATOR == 0) {
            _checkThreshold(_threshold, _validatorCount() - 1);
        }
        _setMasks(m.index, roles);
        _members[account].roles = roles;
        emit RolesChanged(account, m.roles, roles);
    }

    function _setMasks(uint8 index, uint8 roles) private {
        uint48 bit = uint48(1) << index;
        _validatorMask = roles & ROLE_VALIDATOR != 0 ? _validatorMask | bit : _validatorMask & ~bit;
        _submitterMask = roles & ROLE_SUBMITTER != 0 ? _submitterMask | bit : _submitterMask & ~bit;
    }

    function _setThreshold(uint8 threshold_) internal {
        _checkThreshold(threshold_, _validatorCount());
        emit ThresholdChanged(_threshold, threshold_);
        _threshold = threshold_;
    }

    function _validatorCount() internal view returns (uint256) {
        return _popcount(_validatorMask);
    }

    function _isValidator(address account) internal view returns (bool) {
        Member memory m = _members[account];
        return m.active && m.roles & ROLE_VALIDATOR != 0;
    }

    function _accountsIn(uint48 mask) internal view returns (address[] memory list) {
        list = new address[](_popcount(mask));
        uint256 n = 0;
        for (uint256 i = 0; mask != 0; ++i) {
            if (mask & 1 != 0) list[n++] = _accounts[i];
            mask >>= 1;
        }
    }

    function _popcount(uint48 x) internal pure returns (uint8) {
        uint256 v = x;
        v = v - ((v >> 1) & 0x555555555555);
        v = (v & 0x333333333333) + ((v >> 2) & 0x333333333333);
        v = (v + (v >> 4)) & 0x0f0f0f0f0f0f;
        return uint8((v * 0x010101010101) >> 40);
    }
}
