"""Where member keys come from: encrypted keystores, or the devnet's published dev keys.

A key is never taken from a command-line argument and never logged. A keystore's password
comes from ``DPKI_KEYSTORE_PASSWORD`` or, on a terminal, a prompt.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from dpki.errors import ConfigError

__all__ = ["DEVNET_MNEMONIC", "PASSWORD_ENV", "dev_account", "load_keystore", "write_keystore"]

#: anvil's default mnemonic: its accounts are public test keys, for the devnet only
DEVNET_MNEMONIC = "test test test test test test test test test test test junk"
PASSWORD_ENV = "DPKI_KEYSTORE_PASSWORD"

_DEV_CACHE: dict[int, LocalAccount] = {}


def dev_account(index: int) -> LocalAccount:
    """Return devnet account ``index`` (anvil's mnemonic, path m/44'/60'/0'/0/index)."""
    if index not in _DEV_CACHE:
        Account.enable_unaudited_hdwallet_features()
        _DEV_CACHE[index] = Account.from_mnemonic(
            DEVNET_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}"
        )
    return _DEV_CACHE[index]


def _password(path: Path) -> str:
    password = os.environ.get(PASSWORD_ENV)
    if password is not None:
        return password
    if not sys.stdin.isatty():
        raise ConfigError(
            f"keystore {path} needs a password: set {PASSWORD_ENV} or run on a terminal"
        )
    return getpass.getpass(f"password for {path}: ")


def load_keystore(path: str | Path, password: str | None = None) -> LocalAccount:
    """Decrypt an Ethereum V3 keystore file into an account."""
    file = Path(path)
    try:
        keyfile = json.loads(file.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no keystore file at {file}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{file} is not a JSON keystore: {exc}") from None
    secret = password if password is not None else _password(file)
    try:
        key = Account.decrypt(keyfile, secret)
    except ValueError:
        raise ConfigError(f"wrong password for keystore {file} (or a damaged file)") from None
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{file} is not a V3 keystore (missing {exc})") from None
    account: LocalAccount = Account.from_key(key)
    return account


def encrypt_key(key: bytes, password: str, **options: Any) -> dict[str, Any]:
    """Return ``Account.encrypt(key, password, **options)`` with a 16-byte AES IV.

    eth-keyfile writes the IV as an integer's bytes, so one keystore in 256 (IV starting
    with a zero byte) has a shorter one; eth-account reads it back, but geth panics on it
    ("bad IV length") and the sealer never starts. The same counter, left-padded: both read
    it alike."""
    keyfile: dict[str, Any] = Account.encrypt(key, password, **options)
    params = keyfile["crypto"]["cipherparams"]
    params["iv"] = params["iv"].rjust(32, "0")
    return keyfile


def write_keystore(account: LocalAccount, path: str | Path, password: str) -> Path:
    """Encrypt ``account`` into a V3 keystore file readable only by its owner."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    keyfile = encrypt_key(account.key, password)
    file.write_text(json.dumps(keyfile))
    file.chmod(0o600)
    return file
