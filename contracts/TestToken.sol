// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title A plain ERC-20 for the test bed and the tests: anyone may mint. Never deploy it for money.
contract TestToken is ERC20 {
    uint8 private immutable _decimals;

    /// @param decimals_ Fractional digits (Kommons' default is 6, like USDC: kommons.money).
    constructor(string memory name_, string memory symbol_, uint8 decimals_) ERC20(name_, symbol_) {
        _decimals = decimals_;
    }

    /// @notice Fractional digits of the token.
    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    /// @notice Create `amount` tokens for `to` (test token: no access control).
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
