// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title A plain ERC-20 for the test bed and the tests: anyone may mint. Never deploy it for money.
contract TestToken is ERC20 {
    constructor(string memory name_, string memory symbol_) ERC20(name_, symbol_) {}

    /// @notice Create `amount` tokens for `to` (test token: no access control).
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
